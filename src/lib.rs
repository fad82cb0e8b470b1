//! baton runs declarative pipelines of agent.ai agents.
//!
//! Words used throughout the crate, one per concept:
//!
//! - *workflow*: a YAML file describing steps, inputs and outputs.
//! - *step*: one node of the workflow's graph; it calls an *agent* or runs
//!   a local command.
//! - *input*: a workflow parameter, or the text a step sends.
//! - *output*: what a step produced, or a value the workflow reports.
//! - *run*: one execution of a workflow, with its own directory of results.
//!
//! The data flows down the modules in this order: [`workflow`] reads the
//! file, [`plan`] checks it and seals the graph, [`run`] schedules and
//! executes steps through an [`agent`] backend, and [`store`] writes every
//! result to disk. [`cli`] is the command line on top.

pub mod agent;
pub mod cli;
pub mod diagnostic;
pub mod hash;
pub mod plan;
pub mod run;
pub mod store;
pub mod template;
pub mod workflow;
