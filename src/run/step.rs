//! Doing one step: render its input, call its backend, retry what is worth
//! retrying. While a step waits between tries it gives its concurrency slot
//! back, so one rate-limited step never holds up the others.

use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime};

use serde_json::{Map, Value};
use tokio::sync::{OwnedSemaphorePermit, Semaphore};

use crate::agent::agentai::AgentAi;
use crate::agent::command::{self, CommandEnv};
use crate::agent::{CallError, Reply};
use crate::plan::{InputTemplates, Plan, StepIdx};
use crate::store::cache::{Cache, CachedReply};
use crate::store::{AttemptRecord, StepRecord};
use crate::workflow::Action;

/// The longest wait between tries that exponential backoff grows to.
const MAX_BACKOFF: Duration = Duration::from_secs(300);

/// Everything one step needs, owned, so it can run on any thread.
pub struct StepJob {
    pub idx: StepIdx,
    pub plan: Arc<Plan>,
    /// The values of the steps its input reads, by step id.
    pub reads: Vec<(String, Arc<Value>)>,
    pub shared: Arc<Shared>,
    /// This step's result from an earlier attempt of the run, still valid
    /// if the rendered input is the same.
    pub previous: Option<Arc<StepRecord>>,
    /// Whether to use the cache, and for how long an entry stays good
    /// (`None` inside: until pruned).
    pub cache: Option<Option<Duration>>,
    /// The hash of everything upstream of the step, as it is in this run.
    pub upstream: String,
    /// Attempts started so far, for the run to record if it cancels the
    /// step before the step can say.
    pub tries: Arc<AtomicU32>,
}

/// What every step of a run shares.
pub struct Shared {
    pub inputs: Value,
    pub run_id: String,
    pub agentai: Option<AgentAi>,
    pub slots: Arc<Semaphore>,
    pub cache: Cache,
}

/// Where a successful result came from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Source {
    Called,
    /// From this run's earlier attempt, on resume.
    Reused,
    /// From the cache shared across runs.
    Cached,
}

/// How a step ended.
pub struct StepOutcome {
    pub idx: StepIdx,
    pub result: Result<Reply, Failure>,
    /// The rendered input, when rendering succeeded.
    pub input: Option<String>,
    pub input_sha256: Option<String>,
    pub source: Source,
    pub attempts: Vec<AttemptRecord>,
    pub started_at: SystemTime,
    pub elapsed: Duration,
    /// The concurrency slot, handed back with the outcome so that the run
    /// sees the step's end before another step can take the slot.
    pub slot: Option<OwnedSemaphorePermit>,
    /// [`StepJob::upstream`], handed back.
    pub upstream: String,
}

/// A step's failure, and whether it must stop the whole run.
#[derive(Debug, Clone)]
pub struct Failure {
    pub message: String,
    pub stops_run: bool,
}

/// Runs the step, holding `slot` while it works.
pub async fn execute(job: StepJob, slot: OwnedSemaphorePermit) -> StepOutcome {
    let mut slot = Some(slot);
    let started_at = SystemTime::now();
    let clock = Instant::now();
    let input = match render(&job) {
        Ok(input) => input,
        Err(message) => {
            let failure = Failure {
                message: format!("failed to render input: {message}"),
                stops_run: false,
            };
            return StepOutcome {
                idx: job.idx,
                result: Err(failure),
                input: None,
                input_sha256: None,
                source: Source::Called,
                attempts: Vec::new(),
                started_at,
                elapsed: clock.elapsed(),
                slot,
                upstream: job.upstream,
            };
        }
    };
    let hash = crate::hash::sha256_hex(input.as_bytes());
    let (result, attempts, source) = obtain(&job, &input, &hash, &mut slot).await;
    StepOutcome {
        idx: job.idx,
        result,
        input: Some(input),
        input_sha256: Some(hash),
        source,
        attempts,
        started_at,
        elapsed: clock.elapsed(),
        slot,
        upstream: job.upstream,
    }
}

/// The step's result: reused from an earlier attempt of the run, read from
/// the cache, or called for (and then cached when the step asks).
async fn obtain(
    job: &StepJob,
    input: &str,
    hash: &str,
    slot: &mut Option<OwnedSemaphorePermit>,
) -> (Result<Reply, Failure>, Vec<AttemptRecord>, Source) {
    if let Some(previous) = &job.previous {
        let same_input = previous.input_sha256.as_deref() == Some(hash);
        let same_upstream = previous.upstream.as_deref() == Some(job.upstream.as_str());
        if same_input && same_upstream {
            return (Ok(reply_of(previous)), Vec::new(), Source::Reused);
        }
    }
    let step = job.plan.step(job.idx);
    let key = job
        .cache
        .map(|ttl| (cache_key(&step.spec.action, input), ttl));
    if let Some((key, ttl)) = &key {
        if let Some(hit) = job.shared.cache.get(key, *ttl) {
            return (Ok(from_cached(hit)), Vec::new(), Source::Cached);
        }
    }
    let (result, attempts) = attempts(job, input, slot).await;
    if let (Ok(reply), Some((key, _))) = (&result, key) {
        let cache = job.shared.cache.clone();
        let entry = to_cached(reply);
        let stored = tokio::task::spawn_blocking(move || cache.put(&key, entry)).await;
        if let Ok(Err(e)) = stored {
            let cause = std::error::Error::source(&e).map(|c| c.to_string());
            let cause = cause.unwrap_or_default();
            tracing::warn!(error = %e, cause, "could not cache the result");
        }
    }
    (result, attempts, Source::Called)
}

/// The cache key: what was called, and with which input.
fn cache_key(action: &Action, input: &str) -> String {
    let mut parts: Vec<&[u8]> = vec![b"baton-cache-1"];
    match action {
        Action::Agent(agent) => parts.extend([b"agent".as_slice(), agent.as_bytes()]),
        Action::Run(args) => {
            parts.push(b"run");
            parts.extend(args.iter().map(|a| a.as_bytes()));
        }
    }
    parts.push(input.as_bytes());
    crate::hash::sha256_parts(parts)
}

fn reply_of(record: &StepRecord) -> Reply {
    Reply {
        raw: record.raw.clone().unwrap_or(Value::Null),
        output: record.output.clone().unwrap_or_default(),
        thinking: record.thinking.clone(),
        json: record.json.clone(),
    }
}

fn from_cached(hit: CachedReply) -> Reply {
    Reply {
        raw: hit.raw,
        output: hit.output,
        thinking: hit.thinking,
        json: hit.json,
    }
}

fn to_cached(reply: &Reply) -> CachedReply {
    CachedReply {
        raw: reply.raw.clone(),
        output: reply.output.clone(),
        thinking: reply.thinking.clone(),
        json: reply.json.clone(),
    }
}

/// Tries the call up to the step's retry limit.
async fn attempts(
    job: &StepJob,
    input: &str,
    slot: &mut Option<OwnedSemaphorePermit>,
) -> (Result<Reply, Failure>, Vec<AttemptRecord>) {
    let step = job.plan.step(job.idx);
    let mut records = Vec::new();
    let mut waited = None;
    for attempt in 1..=step.retry.attempts {
        if slot.is_none() {
            let permit = Arc::clone(&job.shared.slots).acquire_owned().await;
            slot.replace(permit.expect("the run never closes its semaphore"));
        }
        job.tries.fetch_add(1, Ordering::Relaxed);
        let started = SystemTime::now();
        let clock = Instant::now();
        let result = call(job, input).await;
        let mut record = AttemptRecord {
            started_at: timestamp(started),
            duration_ms: clock.elapsed().as_millis() as u64,
            waited_ms: waited.map(|w: Duration| w.as_millis() as u64),
            error: None,
        };
        let error = match result {
            Ok(reply) => {
                records.push(record);
                return (Ok(reply), records);
            }
            Err(e) => e,
        };
        record.error = Some(error.to_string());
        records.push(record);
        tracing::debug!(attempt, error = %error, "attempt failed");
        let (after, stops_run) = match &error {
            CallError::Transient { after, .. } => (*after, false),
            CallError::Permanent { .. } => return (Err(failure(error, false)), records),
            CallError::Fatal { .. } => return (Err(failure(error, true)), records),
        };
        if attempt == step.retry.attempts {
            return (Err(failure(error, stops_run)), records);
        }
        let delay = match after {
            Some(asked) => asked.min(step.retry.max_wait),
            None => backoff(step.retry.backoff, attempt),
        };
        tracing::info!(attempt, delay_ms = delay.as_millis() as u64, "retrying");
        drop(slot.take());
        tokio::time::sleep(delay).await;
        waited = Some(delay);
    }
    unreachable!("retry attempts are at least 1")
}

fn failure(error: CallError, stops_run: bool) -> Failure {
    Failure {
        message: error.to_string(),
        stops_run,
    }
}

async fn call(job: &StepJob, input: &str) -> Result<Reply, CallError> {
    let step = job.plan.step(job.idx);
    match &step.spec.action {
        Action::Agent(agent) => {
            let client = job
                .shared
                .agentai
                .as_ref()
                .expect("a run with agent steps has a client");
            client.invoke(agent, input, step.timeout).await
        }
        Action::Run(args) => {
            let env = CommandEnv {
                run_id: &job.shared.run_id,
                workflow: job.plan.name(),
                step: &step.spec.id,
            };
            command::run(args, input, step.timeout, &env).await
        }
    }
}

/// The wait before try `attempt + 1`: `base` doubled per earlier retry,
/// with jitter of up to half either way so that steps failing together do
/// not retry together.
fn backoff(base: Duration, attempt: u32) -> Duration {
    let exp = base.saturating_mul(1u32 << (attempt - 1).min(16));
    let capped = exp.min(MAX_BACKOFF);
    capped.mul_f64(0.5 + fastrand::f64())
}

/// Renders the step's input against the values it reads.
fn render(job: &StepJob) -> Result<String, String> {
    let context = context(&job.plan, &job.shared, &job.reads);
    let templates = job.plan.templates();
    match &job.plan.step(job.idx).input {
        InputTemplates::Text(name) => templates.render(name, &context),
        InputTemplates::Fields(fields) => {
            let mut lines = Vec::with_capacity(fields.len());
            for (key, name) in fields {
                let value = templates
                    .render(name, &context)
                    .map_err(|e| format!("field `{key}`: {e}"))?;
                lines.push(format!("{key}={value}"));
            }
            Ok(lines.join("\n"))
        }
    }
}

/// The template context: the inputs, the run, the workflow, and only the
/// steps that the template reads.
pub fn context(plan: &Plan, shared: &Shared, reads: &[(String, Arc<Value>)]) -> Value {
    let mut steps = Map::with_capacity(reads.len());
    for (id, value) in reads {
        steps.insert(id.clone(), Value::clone(value));
    }
    let mut root = Map::with_capacity(4);
    root.insert("inputs".into(), shared.inputs.clone());
    root.insert("steps".into(), Value::Object(steps));
    root.insert("run".into(), serde_json::json!({ "id": shared.run_id }));
    root.insert(
        "workflow".into(),
        serde_json::json!({ "name": plan.name() }),
    );
    Value::Object(root)
}

/// RFC 3339 in UTC to the millisecond.
pub fn timestamp(at: SystemTime) -> String {
    humantime::format_rfc3339_millis(at).to_string()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn backoff_doubles_within_jitter() {
        for attempt in 1..=4 {
            let wait = backoff(Duration::from_secs(2), attempt);
            let nominal = 2.0 * f64::from(1u32 << (attempt - 1));
            let secs = wait.as_secs_f64();
            assert!(
                secs >= nominal * 0.5 && secs <= nominal * 1.5,
                "{attempt}: {secs}"
            );
        }
        assert!(backoff(Duration::from_secs(60), 30) <= MAX_BACKOFF.mul_f64(1.5));
    }
}
