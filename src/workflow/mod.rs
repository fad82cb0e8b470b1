//! The workflow file's model and its loading.
//!
//! A workflow is read in three stages: [`source`] turns the file into a YAML
//! value with positions, [`extract`] turns that value into the typed model
//! below while collecting every mistake, and the `plan` module checks how
//! the steps refer to each other.

pub mod duration;
pub mod extract;
pub mod source;

use std::time::Duration;

use indexmap::IndexMap;

/// A workflow file, typed but not yet checked as a graph.
#[derive(Debug, Clone)]
pub struct Workflow {
    pub name: String,
    pub description: Option<String>,
    pub inputs: IndexMap<String, InputSpec>,
    pub concurrency: Option<usize>,
    pub defaults: StepDefaults,
    /// Steps in file order.
    pub steps: Vec<StepSpec>,
    /// Output name to template source, in file order.
    pub outputs: IndexMap<String, String>,
}

/// A declared workflow parameter.
#[derive(Debug, Clone, Default)]
pub struct InputSpec {
    pub default: Option<serde_json::Value>,
    pub description: Option<String>,
}

/// Settings every step inherits unless it sets its own.
#[derive(Debug, Clone, Default)]
pub struct StepDefaults {
    pub timeout: Option<Duration>,
    pub retry: Option<Retry>,
}

/// How often a failing call is tried and how long to wait between tries.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Retry {
    /// Most tries in all, the first included.
    pub attempts: u32,
    /// Wait before the second try; doubled for each try after it.
    pub backoff: Duration,
    /// The longest wait a `Retry-After` header can impose.
    pub max_wait: Duration,
}

impl Default for Retry {
    fn default() -> Self {
        Retry {
            attempts: 3,
            backoff: Duration::from_secs(1),
            max_wait: Duration::from_secs(120),
        }
    }
}

/// The whole-attempt timeout when neither the step nor the defaults set one.
pub const DEFAULT_TIMEOUT: Duration = Duration::from_secs(300);

/// The concurrency when neither the file nor the command line sets one.
pub const DEFAULT_CONCURRENCY: usize = 4;

/// The highest concurrency accepted, in the file as on the command line.
pub const MAX_CONCURRENCY: usize = 10_000;

/// One step as written in the file.
#[derive(Debug, Clone)]
pub struct StepSpec {
    pub id: String,
    pub action: Action,
    pub input: StepInput,
    pub needs: Vec<String>,
    pub timeout: Option<Duration>,
    pub retry: Option<Retry>,
    pub cache: Option<CacheSetting>,
    pub description: Option<String>,
}

/// Whether a step's results are kept in the cache shared across runs.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CacheSetting {
    Off,
    /// Kept until pruned.
    Forever,
    /// Kept for this long.
    For(Duration),
}

/// What a step calls.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum Action {
    /// An agent.ai agent, by id.
    Agent(String),
    /// A local command and its arguments, run without a shell.
    Run(Vec<String>),
}

/// A step's input template: one text, or named fields sent as `key=value`
/// lines in file order.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum StepInput {
    Text(String),
    Fields(Vec<(String, String)>),
}

/// Whether `id` may name a step or a workflow: it becomes a file name.
pub fn is_valid_id(id: &str) -> bool {
    !id.is_empty()
        && id.len() <= 64
        && id
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b'-')
}
