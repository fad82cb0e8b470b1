//! The checked plan: a workflow whose steps, references and templates have
//! all been verified, sealed into a graph that no longer changes.
//!
//! [`load`] is the only way to get a [`Plan`], so holding one means every
//! check in [`build`] passed.

mod build;
pub mod graph;

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::time::Duration;

use indexmap::IndexMap;

use crate::diagnostic::{did_you_mean, Diagnostic, Pos, Report};
use crate::template::Templates;
use crate::workflow::source::Spans;
use crate::workflow::{self, Action, Retry, StepSpec, Workflow};

/// Index of a step in [`Plan::steps`].
pub type StepIdx = usize;

/// A workflow checked and ready to run.
#[derive(Debug)]
pub struct Plan {
    path: PathBuf,
    source: String,
    workflow: Workflow,
    steps: Vec<Step>,
    by_id: HashMap<String, StepIdx>,
    templates: Templates,
    outputs: Vec<Output>,
}

/// A step with its resolved settings and edges.
#[derive(Debug)]
pub struct Step {
    pub spec: StepSpec,
    pub timeout: Duration,
    pub retry: Retry,
    /// Steps that must succeed first, without repeats, in file order.
    pub deps: Vec<StepIdx>,
    /// Steps that wait for this one.
    pub dependents: Vec<StepIdx>,
    /// Steps whose values the input templates read; a subset of `deps`.
    pub reads: Vec<StepIdx>,
    /// Registered template names for the input: one for text, one per field.
    pub input: InputTemplates,
    /// A hash of what decides the step's result besides its rendered
    /// input: the agent or command, and the input template.
    pub definition: String,
}

#[derive(Debug)]
pub enum InputTemplates {
    Text(String),
    Fields(Vec<(String, String)>),
}

/// A workflow output and the steps its template reads.
#[derive(Debug)]
pub struct Output {
    pub name: String,
    pub template: String,
    pub reads: Vec<StepIdx>,
}

/// Reads, parses and checks the workflow at `path`.
pub fn load(path: &Path) -> Result<Plan, Report> {
    let fail = |source: String, diagnostics| Report {
        path: path.to_owned(),
        source,
        diagnostics,
    };
    let text = workflow::source::read_capped(path, "workflow file")
        .map_err(|d| fail(String::new(), vec![d]))?;
    let source = workflow::source::parse(text).map_err(|(text, d)| fail(text, d))?;
    let fallback = path
        .file_stem()
        .and_then(|s| s.to_str())
        .unwrap_or("workflow");

    let mut diagnostics = Vec::new();
    let workflow::source::Source { text, value, spans } = source;
    let wf = workflow::extract::workflow(&value, &spans, fallback, &mut diagnostics);
    // The YAML value weighs far more than the workflow it became.
    drop(value);
    let plan = build::build(wf, &spans, &mut diagnostics);
    if diagnostics.is_empty() {
        let mut plan = plan.expect("a plan is built whenever no problem was found");
        plan.path = path.to_owned();
        plan.source = text;
        return Ok(plan);
    }

    // Positions are indexed only now, and the checks run again to place
    // each problem.
    let mut source = workflow::source::parse(text).map_err(|(text, d)| fail(text, d))?;
    source.locate();
    diagnostics.clear();
    let wf = workflow::extract::workflow(&source.value, &source.spans, fallback, &mut diagnostics);
    build::build(wf, &source.spans, &mut diagnostics);
    diagnostics.sort_by_key(|d| d.pos);
    Err(fail(source.text, diagnostics))
}

impl Plan {
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// The workflow file's text as loaded.
    pub fn source(&self) -> &str {
        &self.source
    }

    pub fn name(&self) -> &str {
        &self.workflow.name
    }

    pub fn workflow(&self) -> &Workflow {
        &self.workflow
    }

    pub fn steps(&self) -> &[Step] {
        &self.steps
    }

    pub fn step(&self, idx: StepIdx) -> &Step {
        &self.steps[idx]
    }

    pub fn find(&self, id: &str) -> Option<StepIdx> {
        self.by_id.get(id).copied()
    }

    pub fn outputs(&self) -> &[Output] {
        &self.outputs
    }

    pub fn templates(&self) -> &Templates {
        &self.templates
    }

    pub fn concurrency(&self) -> usize {
        self.workflow
            .concurrency
            .unwrap_or(workflow::DEFAULT_CONCURRENCY)
    }

    pub fn has_agent_steps(&self) -> bool {
        self.steps
            .iter()
            .any(|s| matches!(s.spec.action, Action::Agent(_)))
    }

    /// Merges `given` over the declared defaults, reporting inputs that are
    /// required but missing and inputs that the workflow does not declare.
    pub fn resolve_inputs(
        &self,
        given: &IndexMap<String, serde_json::Value>,
    ) -> Result<serde_json::Map<String, serde_json::Value>, Report> {
        let declared = &self.workflow.inputs;
        let mut diagnostics = Vec::new();
        for name in given.keys().filter(|n| !declared.contains_key(*n)) {
            let mut d = Diagnostic::new(format!("input `{name}` is not declared by the workflow"));
            if let Some(near) = did_you_mean(name, declared.keys().map(String::as_str)) {
                d = d.help(format!("did you mean `{near}`?"));
            }
            diagnostics.push(d);
        }
        let mut values = serde_json::Map::new();
        let mut spans: Option<Option<Spans>> = None;
        for (name, spec) in declared {
            match given.get(name).or(spec.default.as_ref()) {
                Some(v) => {
                    values.insert(name.clone(), v.clone());
                }
                None => diagnostics.push(
                    Diagnostic::new(format!("required input `{name}` was not given"))
                        .at(self.input_position(&mut spans, name))
                        .help(format!("pass it with `--input {name}=...`")),
                ),
            }
        }
        if diagnostics.is_empty() {
            return Ok(values);
        }
        Err(Report {
            path: self.path.clone(),
            source: self.source.clone(),
            diagnostics,
        })
    }

    /// Where input `name` is declared; the file's positions are indexed on
    /// the first call, since only an error needs them.
    fn input_position(&self, spans: &mut Option<Option<Spans>>, name: &str) -> Option<Pos> {
        let spans = spans.get_or_insert_with(|| {
            let mut source = workflow::source::parse(self.source.clone()).ok()?;
            source.locate();
            Some(source.spans)
        });
        spans.as_ref()?.key(&["inputs", name])
    }
}
