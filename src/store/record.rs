//! The shapes of the files a run writes. Field names here are the file
//! format documented in `docs/results.md`.

use indexmap::IndexMap;
use serde::{Deserialize, Serialize};
use serde_json::Value;

/// What became of a step.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum StepStatus {
    Succeeded,
    Failed,
    /// A step it depends on did not succeed.
    Skipped,
    /// It was running when the run was stopped.
    Cancelled,
    /// The run stopped before it could start.
    NotStarted,
}

impl StepStatus {
    pub fn as_str(self) -> &'static str {
        match self {
            StepStatus::Succeeded => "succeeded",
            StepStatus::Failed => "failed",
            StepStatus::Skipped => "skipped",
            StepStatus::Cancelled => "cancelled",
            StepStatus::NotStarted => "not_started",
        }
    }
}

/// `run.json`.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct RunRecord {
    pub run_id: String,
    /// `running`, `succeeded`, `failed` or `interrupted`.
    pub status: String,
    pub workflow: WorkflowRecord,
    /// Every input's value, defaults included.
    pub inputs: serde_json::Map<String, Value>,
    /// The inputs given on the command line or in `--inputs`; a resumed
    /// run keeps these, and takes defaults afresh from the file.
    #[serde(default)]
    pub inputs_given: serde_json::Map<String, Value>,
    pub concurrency: usize,
    /// When the run first started.
    pub started_at: String,
    /// When the latest resume of it started.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub resumed_at: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub ended_at: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub duration_ms: Option<u64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
    pub steps: IndexMap<String, StepSummary>,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct WorkflowRecord {
    pub name: String,
    pub path: String,
    pub sha256: String,
    /// The commit checked out when the file is in a git work tree.
    pub git_commit: Option<String>,
    /// Whether the file differs from that commit.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub git_dirty: Option<bool>,
}

/// A step's line in `run.json`.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct StepSummary {
    pub status: StepStatus,
    pub attempts: u32,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub duration_ms: Option<u64>,
    /// Why it failed.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
    /// Why it did not run.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub reason: Option<String>,
    /// Its result was taken from an earlier attempt of this run.
    #[serde(default, skip_serializing_if = "is_false")]
    pub reused: bool,
    /// Its result came from the cache shared across runs.
    #[serde(default, skip_serializing_if = "is_false")]
    pub cached: bool,
}

fn is_false(b: &bool) -> bool {
    !b
}

/// `steps/<id>.json`.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct StepRecord {
    pub step: String,
    pub status: StepStatus,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub agent: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub command: Option<Vec<String>>,
    /// The rendered input, as sent.
    pub input: Option<String>,
    pub raw: Option<Value>,
    pub output: Option<String>,
    pub thinking: Option<String>,
    pub json: Option<Value>,
    pub error: Option<String>,
    pub started_at: String,
    pub ended_at: String,
    pub duration_ms: u64,
    pub attempts: Vec<AttemptRecord>,
    /// Hash of the step's agent or command and input template.
    #[serde(default)]
    pub definition: Option<String>,
    /// Hash of the rendered input.
    #[serde(default)]
    pub input_sha256: Option<String>,
    /// Hash of what the step's dependencies were when it ran: their
    /// definitions, inputs and results, all the way up. A resumed run
    /// reuses the result only while this still holds.
    #[serde(default)]
    pub upstream: Option<String>,
    /// The result came from the cache; no call was made.
    #[serde(default, skip_serializing_if = "is_false")]
    pub cached: bool,
}

/// One try of a step.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct AttemptRecord {
    pub started_at: String,
    pub duration_ms: u64,
    /// How long the step waited before this try, slot given back.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub waited_ms: Option<u64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
}

/// One line of `journal.jsonl`, appended once the step's file is durable.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct JournalLine {
    pub step: String,
    pub status: StepStatus,
    pub attempts: u32,
    /// sha256 of the rendered input, to tell later whether it changed.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub input_sha256: Option<String>,
    pub ended_at: String,
}

/// `outputs.json`: every output that could be computed, and why the others
/// could not.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct OutputsRecord {
    pub outputs: IndexMap<String, Value>,
    pub missing: IndexMap<String, String>,
}

#[cfg(test)]
impl StepRecord {
    pub fn for_test(step: &str) -> StepRecord {
        StepRecord {
            step: step.into(),
            status: StepStatus::Succeeded,
            agent: Some("x".into()),
            command: None,
            input: Some("in".into()),
            raw: Some(Value::String("out".into())),
            output: Some("out".into()),
            thinking: None,
            json: None,
            error: None,
            started_at: String::new(),
            ended_at: String::new(),
            duration_ms: 1,
            attempts: Vec::new(),
            definition: None,
            input_sha256: None,
            upstream: None,
            cached: false,
        }
    }
}

#[cfg(test)]
impl JournalLine {
    pub fn for_test(step: &str) -> JournalLine {
        JournalLine {
            step: step.into(),
            status: StepStatus::Succeeded,
            attempts: 1,
            input_sha256: None,
            ended_at: String::new(),
        }
    }
}
