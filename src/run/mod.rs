//! One execution of a plan: the event loop that starts ready steps within
//! the concurrency limit, reacts to each step's end, and hands results to
//! the store as they arrive.
//!
//! [`scheduler`] decides which steps are ready, [`step`] does one step; this
//! module joins them and owns the run's state.

pub mod progress;
pub mod resume;
pub mod scheduler;
pub mod step;

use std::collections::{HashMap, VecDeque};
use std::path::PathBuf;
use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::Arc;
use std::time::{Instant, SystemTime};

use serde_json::{Map, Value};
use tokio::sync::{watch, Semaphore};
use tokio::task::JoinSet;
use tracing::Instrument;

use crate::agent::agentai::AgentAi;
use crate::plan::{Plan, StepIdx};
use crate::store::cache::Cache;
use crate::store::previous::Previous;
use crate::store::record::OutputsRecord;
use crate::store::{
    provenance, JournalLine, RunRecord, RunStore, StepRecord, StepStatus, StepSummary, StoreError,
};
use crate::workflow::Action;
use progress::Progress;
use scheduler::Scheduler;
use step::{timestamp, Shared, StepJob, StepOutcome};

/// Settings of one run, resolved from the command line and environment.
pub struct RunOptions {
    pub out_dir: PathBuf,
    pub concurrency: usize,
    pub fail_fast: bool,
    /// Inputs after defaults were applied.
    pub inputs: Map<String, Value>,
    /// The inputs the person gave, which a resumed run keeps.
    pub inputs_given: Map<String, Value>,
    /// The agent.ai client; needed when the workflow has agent steps.
    pub agentai: Option<AgentAi>,
    pub progress: Progress,
    /// The directory of an earlier attempt of this run, to continue.
    pub resume: Option<PathBuf>,
    /// `--cache` (true) or `--no-cache` (false) over every step's own
    /// `cache` setting.
    pub cache_all: Option<bool>,
    /// Where the cache lives: `<out>/.cache` unless `--cache-dir` says.
    pub cache: Cache,
}

/// How a run ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RunStatus {
    Succeeded,
    Failed,
    Interrupted,
}

impl RunStatus {
    pub fn as_str(self) -> &'static str {
        match self {
            RunStatus::Succeeded => "succeeded",
            RunStatus::Failed => "failed",
            RunStatus::Interrupted => "interrupted",
        }
    }
}

/// The result of [`execute`].
pub struct RunSummary {
    pub status: RunStatus,
    pub dir: PathBuf,
    pub record: RunRecord,
    pub outputs: OutputsRecord,
    /// Results that could not be written; the run itself went on.
    pub store_errors: Vec<StoreError>,
}

/// Why the run stopped starting steps before the graph was done.
#[derive(Debug, Clone)]
enum Stop {
    Interrupted,
    FailFast(String),
    Fatal(String),
    /// A step's result could not be written; the message says where.
    Store(String),
}

impl Stop {
    fn reason(&self) -> String {
        match self {
            Stop::Interrupted => "the run was interrupted".into(),
            Stop::FailFast(id) => format!("the run stopped after `{id}` failed (--fail-fast)"),
            Stop::Fatal(id) => {
                format!("the run stopped: step `{id}` hit an error no step can get past")
            }
            Stop::Store(message) => {
                format!("the run stopped: results can no longer be written ({message})")
            }
        }
    }
}

/// Runs `plan` to the end, or until `interrupt` turns true.
pub async fn execute(
    plan: Arc<Plan>,
    options: RunOptions,
    mut interrupt: watch::Receiver<bool>,
) -> Result<RunSummary, StoreError> {
    let started = SystemTime::now();
    let mut first_start = None;
    let (run_id, store, reuse) = match &options.resume {
        Some(dir) => {
            // Read what finished only once the lock is held, so no other
            // process is still adding to it.
            let store = RunStore::open(&options.out_dir, dir.clone())?;
            let previous = crate::store::previous::load(dir);
            let reuse = resume::reuse(&plan, &previous);
            announce(&plan, &previous, &reuse, &options.progress);
            first_start = previous.run.map(|r| r.started_at);
            (previous.run_id, store, reuse)
        }
        None => {
            let run_id = crate::store::new_run_id();
            let store = RunStore::create(&options.out_dir, plan.name(), &run_id)?;
            let reuse = resume::Reuse {
                records: vec![None; plan.steps().len()],
                ..Default::default()
            };
            (run_id, store, reuse)
        }
    };

    let clock = Instant::now();
    let git = tokio::task::spawn_blocking({
        let path = plan.path().to_owned();
        move || provenance::git_state(&path)
    });
    let mut record = RunRecord {
        run_id: run_id.clone(),
        status: "running".into(),
        workflow: provenance::describe(plan.name(), plan.path(), plan.source()),
        inputs: options.inputs.clone(),
        inputs_given: options.inputs_given.clone(),
        concurrency: options.concurrency,
        started_at: first_start.unwrap_or_else(|| timestamp(started)),
        resumed_at: options.resume.is_some().then(|| timestamp(started)),
        ended_at: None,
        duration_ms: None,
        error: None,
        steps: plan
            .steps()
            .iter()
            .map(|s| (s.spec.id.clone(), summary(StepStatus::NotStarted, None)))
            .collect(),
    };
    store.write_now("run.json", &record)?;
    tracing::info!(run = %run_id, dir = %store.dir().display(), "run started");

    let shared = Arc::new(Shared {
        inputs: Value::Object(options.inputs.clone()),
        run_id,
        agentai: options.agentai.clone(),
        slots: Arc::new(Semaphore::new(options.concurrency)),
        cache: options.cache.clone(),
    });
    let mut engine = Engine::new(Arc::clone(&plan), shared, store, &options);
    engine.previous = reuse.records;
    let stop = engine.run(&mut interrupt).await;

    // Every step file is written before the outputs and the final run.json,
    // so a finished run.json vouches for the files beside it.
    let mut store_errors = engine.store.finish().await;
    while let Ok(lost) = engine.lost.try_recv() {
        engine.lose(lost);
    }
    let status = match (&stop, engine.all_succeeded()) {
        (Some(Stop::Interrupted), _) => RunStatus::Interrupted,
        (_, true) if store_errors.is_empty() => RunStatus::Succeeded,
        _ => RunStatus::Failed,
    };
    let outputs = engine.outputs();
    let Engine {
        store, summaries, ..
    } = engine;
    for (idx, s) in summaries.into_iter().enumerate() {
        record.steps[idx] = s;
    }
    provenance::add_git_state(&mut record.workflow, git.await.ok().flatten());
    record.status = status.as_str().into();
    record.ended_at = Some(timestamp(SystemTime::now()));
    record.duration_ms = Some(clock.elapsed().as_millis() as u64);
    record.error = match stop {
        Some(Stop::Interrupted) => None,
        Some(stop) => Some(stop.reason()),
        None if !store_errors.is_empty() => Some(format!(
            "{} result file(s) could not be written",
            store_errors.len()
        )),
        None => None,
    };

    let mut status = status;
    if let Err(e) = store.write_now("outputs.json", &outputs) {
        if status == RunStatus::Succeeded {
            status = RunStatus::Failed;
            record.status = status.as_str().into();
            record.error = Some(e.to_string());
        }
        store_errors.push(e);
    }
    let dir = store.dir().to_owned();
    if let Err(e) = store.write_now("run.json", &record) {
        store_errors.push(e);
    }
    // Only now may another process take the directory.
    drop(store);
    options.progress.summary(&record, &dir);
    Ok(RunSummary {
        status,
        dir,
        record,
        outputs,
        store_errors,
    })
}

fn summary(status: StepStatus, reason: Option<String>) -> StepSummary {
    StepSummary {
        status,
        attempts: 0,
        duration_ms: None,
        error: None,
        reason,
        reused: false,
        cached: false,
    }
}

/// Tells the person resuming what the earlier attempt left and what a
/// changed workflow file sends back to run.
fn announce(plan: &Plan, previous: &Previous, reuse: &resume::Reuse, progress: &Progress) {
    let ids = |list: &[StepIdx]| -> String {
        let names: Vec<String> = list
            .iter()
            .map(|&i| format!("`{}`", plan.step(i).spec.id))
            .collect();
        names.join(", ")
    };
    let offered = reuse.records.iter().filter(|r| r.is_some()).count();
    progress.note(&format!(
        "resuming run {}: {} of {} steps succeeded earlier, {offered} of them still valid",
        previous.run_id,
        previous.succeeded.len(),
        plan.steps().len()
    ));
    if !previous.unreadable.is_empty() {
        let names: Vec<String> = previous
            .unreadable
            .iter()
            .map(|s| format!("`{s}`"))
            .collect();
        progress.note(&format!(
            "the journal records {} as finished, but the result file is missing or torn; \
             they run again",
            names.join(", ")
        ));
    }
    // Told from the steps' own definitions rather than the file's hash, so
    // a resume that was itself cut short still says what changed.
    if !reuse.changed.is_empty() {
        progress.note(&format!(
            "the workflow changed since: {} changed; these run again: {}",
            ids(&reuse.changed),
            ids(&reuse.invalidated)
        ));
    } else {
        let old_sha = previous.run.as_ref().map(|r| r.workflow.sha256.clone());
        let new_sha = crate::hash::sha256_hex(plan.source().as_bytes());
        if old_sha.is_some_and(|old| old != new_sha) {
            progress.note("the workflow file changed since, but no finished step's definition did");
        }
    }
}

/// A step's task that ended without an outcome: cancelled, or panicked.
struct Ended {
    error: tokio::task::JoinError,
    ran: std::time::Duration,
    tries: u32,
}

/// The run's state while steps are in flight.
struct Engine {
    plan: Arc<Plan>,
    shared: Arc<Shared>,
    store: RunStore,
    progress: Progress,
    fail_fast: bool,
    summaries: Vec<StepSummary>,
    /// Values of succeeded steps that some step or output still reads.
    values: Vec<Option<Arc<Value>>>,
    /// How many readers of each step's value have not yet finished.
    readers_left: Vec<u32>,
    ready: VecDeque<StepIdx>,
    /// Earlier results each step may reuse, on resume.
    previous: Vec<Option<Arc<StepRecord>>>,
    /// Per succeeded step, the hash of it and everything upstream of it,
    /// kept until its last dependent has started.
    lineage: Vec<Option<String>>,
    /// Dependents of each step not yet started.
    lineage_readers: Vec<u32>,
    /// Step results the store could not write.
    lost: tokio::sync::mpsc::UnboundedReceiver<crate::store::LostResult>,
    cache_all: Option<bool>,
    tasks: JoinSet<StepOutcome>,
    /// The step of each task in flight, when it started, and how many
    /// attempts it has begun.
    running: HashMap<tokio::task::Id, (StepIdx, Instant, Arc<AtomicU32>)>,
}

impl Engine {
    fn new(
        plan: Arc<Plan>,
        shared: Arc<Shared>,
        mut store: RunStore,
        options: &RunOptions,
    ) -> Self {
        let n = plan.steps().len();
        let lost = store.take_lost();
        let lineage_readers = plan
            .steps()
            .iter()
            .map(|s| s.dependents.len() as u32)
            .collect();
        let mut readers_left = vec![0u32; n];
        for step in plan.steps() {
            step.reads.iter().for_each(|&r| readers_left[r] += 1);
        }
        for output in plan.outputs() {
            output.reads.iter().for_each(|&r| readers_left[r] += 1);
        }
        Engine {
            plan,
            shared,
            store,
            progress: options.progress,
            fail_fast: options.fail_fast,
            summaries: (0..n)
                .map(|_| summary(StepStatus::NotStarted, None))
                .collect(),
            values: vec![None; n],
            readers_left,
            ready: VecDeque::new(),
            previous: vec![None; n],
            lineage: vec![None; n],
            lineage_readers,
            lost,
            cache_all: options.cache_all,
            tasks: JoinSet::new(),
            running: HashMap::new(),
        }
    }

    /// The event loop: returns why it stopped early, if it did.
    async fn run(&mut self, interrupt: &mut watch::Receiver<bool>) -> Option<Stop> {
        let plan = Arc::clone(&self.plan);
        let mut scheduler = Scheduler::new(&plan);
        self.ready.extend(scheduler.initial());
        let mut stop = None;
        while !self.ready.is_empty() || !self.tasks.is_empty() {
            let slots = Arc::clone(&self.shared.slots);
            tokio::select! {
                biased;
                _ = interrupt.changed(), if stop.is_none() => {
                    stop = Some(Stop::Interrupted);
                    self.halt();
                }
                Some(joined) = self.tasks.join_next_with_id() => {
                    let (idx, outcome) = match joined {
                        Ok((id, outcome)) => (self.running.remove(&id), Ok(outcome)),
                        Err(e) => (self.running.remove(&e.id()), Err(e)),
                    };
                    let (idx, started, tries) =
                        idx.expect("every task is registered when spawned");
                    let outcome = outcome.map_err(|e| Ended {
                        error: e,
                        ran: started.elapsed(),
                        tries: tries.load(Ordering::Relaxed),
                    });
                    if let Some(cause) = self.settle(idx, outcome, &mut scheduler) {
                        if stop.is_none() {
                            stop = Some(cause);
                            self.halt();
                        }
                    }
                }
                Some(lost) = self.lost.recv() => {
                    let message = self.lose(lost);
                    if stop.is_none() {
                        stop = Some(Stop::Store(message));
                        self.halt();
                    }
                }
                permit = slots.acquire_owned(), if !self.ready.is_empty() && stop.is_none() => {
                    let permit = permit.expect("the run never closes its semaphore");
                    let idx = self.ready.pop_front().expect("checked non-empty");
                    self.spawn(idx, permit);
                }
            }
        }
        if let Some(stop) = &stop {
            let reason = stop.reason();
            for s in self.summaries.iter_mut() {
                if s.status == StepStatus::NotStarted {
                    s.reason = Some(reason.clone());
                }
            }
        }
        stop
    }

    /// Stops starting steps and cancels the running ones.
    fn halt(&mut self) {
        self.ready.clear();
        self.tasks.abort_all();
    }

    fn spawn(&mut self, idx: StepIdx, slot: tokio::sync::OwnedSemaphorePermit) {
        let upstream = self.upstream(idx);
        let tries = Arc::new(AtomicU32::new(0));
        let step = self.plan.step(idx);
        let reads = step
            .reads
            .iter()
            .map(|&r| {
                let value = self.values[r]
                    .clone()
                    .expect("a read step succeeded and is kept");
                (self.plan.step(r).spec.id.clone(), value)
            })
            .collect();
        let job = StepJob {
            idx,
            plan: Arc::clone(&self.plan),
            reads,
            shared: Arc::clone(&self.shared),
            previous: self.previous[idx].take(),
            cache: self.cache_for(idx),
            upstream,
            tries: Arc::clone(&tries),
        };
        self.progress
            .started(&step.spec.id, &describe(&step.spec.action));
        let span = tracing::info_span!("step", step = %step.spec.id);
        let handle = self.tasks.spawn(step::execute(job, slot).instrument(span));
        self.running
            .insert(handle.id(), (idx, Instant::now(), tries));
    }

    /// The hash of the lineages of `idx`'s dependencies, in their order.
    /// Each lineage is dropped once its last dependent has started.
    fn upstream(&mut self, idx: StepIdx) -> String {
        let plan = Arc::clone(&self.plan);
        let deps = &plan.step(idx).deps;
        let hash = crate::hash::sha256_parts(deps.iter().map(|&d| {
            self.lineage[d]
                .as_deref()
                .expect("dependencies succeed before their dependents start")
                .as_bytes()
        }));
        for &d in deps {
            self.lineage_readers[d] -= 1;
            if self.lineage_readers[d] == 0 {
                self.lineage[d] = None;
            }
        }
        hash
    }

    /// Whether step `idx` uses the cache, and with which time to live.
    fn cache_for(&self, idx: StepIdx) -> Option<Option<std::time::Duration>> {
        use crate::workflow::CacheSetting;
        match (self.cache_all, self.plan.step(idx).spec.cache) {
            (Some(false), _) | (_, Some(CacheSetting::Off)) => None,
            (_, Some(CacheSetting::For(ttl))) => Some(Some(ttl)),
            (_, Some(CacheSetting::Forever)) | (Some(true), None) => Some(None),
            (None, None) => None,
        }
    }

    /// Records a step's end; returns a reason to stop the run, if any.
    fn settle(
        &mut self,
        idx: StepIdx,
        outcome: Result<StepOutcome, Ended>,
        scheduler: &mut Scheduler<'_>,
    ) -> Option<Stop> {
        let id = self.plan.step(idx).spec.id.clone();
        let outcome = match outcome {
            Ok(outcome) => outcome,
            Err(ended) if ended.error.is_cancelled() => {
                let mut cancelled = summary(
                    StepStatus::Cancelled,
                    Some("the run was stopped while it ran".into()),
                );
                cancelled.duration_ms = Some(ended.ran.as_millis() as u64);
                cancelled.attempts = ended.tries;
                let ran = ended.ran;
                self.summaries[idx] = cancelled;
                self.progress
                    .finished(&id, StepStatus::Cancelled, ran, None);
                self.release_reads(idx);
                return None;
            }
            Err(ended) => panic_outcome(idx, ended.error),
        };
        let (status, error, stops_run) = match &outcome.result {
            Ok(_) => (StepStatus::Succeeded, None, false),
            Err(f) => (StepStatus::Failed, Some(f.message.clone()), f.stops_run),
        };
        match outcome.source {
            step::Source::Reused => self.progress.recalled(&id, "reused"),
            step::Source::Cached => self.progress.recalled(&id, "cached"),
            step::Source::Called => {
                self.progress
                    .finished(&id, status, outcome.elapsed, error.as_deref())
            }
        }
        self.summaries[idx] = StepSummary {
            status,
            attempts: outcome.attempts.len() as u32,
            duration_ms: Some(outcome.elapsed.as_millis() as u64),
            error: error.clone(),
            reason: None,
            reused: outcome.source == step::Source::Reused,
            cached: outcome.source == step::Source::Cached,
        };
        if outcome.source != step::Source::Reused {
            self.persist(idx, &outcome, status);
        }
        self.release_reads(idx);

        if let Ok(reply) = &outcome.result {
            if self.readers_left[idx] > 0 {
                self.values[idx] = Some(Arc::new(reply.values().to_value()));
            }
            if self.lineage_readers[idx] > 0 {
                self.lineage[idx] = Some(lineage(&self.plan, &outcome, reply));
            }
            self.ready.extend(scheduler.succeeded(idx));
            return None;
        }
        for (skipped, cause) in scheduler.failed(idx) {
            let cause_id = &self.plan.step(cause).spec.id;
            let verb = if cause == idx {
                "failed"
            } else {
                "was skipped"
            };
            let reason = format!("`{cause_id}` {verb}");
            self.progress
                .skipped(&self.plan.step(skipped).spec.id, &reason);
            self.summaries[skipped] = summary(StepStatus::Skipped, Some(reason));
            self.release_reads(skipped);
        }
        match () {
            _ if stops_run => Some(Stop::Fatal(id)),
            _ if self.fail_fast => Some(Stop::FailFast(id)),
            _ => None,
        }
    }

    fn persist(&mut self, idx: StepIdx, outcome: &StepOutcome, status: StepStatus) {
        let step = self.plan.step(idx);
        let (agent, command) = match &step.spec.action {
            Action::Agent(a) => (Some(a.clone()), None),
            Action::Run(args) => (None, Some(args.clone())),
        };
        let reply = outcome.result.as_ref().ok();
        let ended = outcome.started_at + outcome.elapsed;
        let record = StepRecord {
            step: step.spec.id.clone(),
            status,
            agent,
            command,
            input: outcome.input.clone(),
            raw: reply.map(|r| r.raw.clone()),
            output: reply.map(|r| r.output.clone()),
            thinking: reply.and_then(|r| r.thinking.clone()),
            json: reply.and_then(|r| r.json.clone()),
            error: outcome.result.as_ref().err().map(|f| f.message.clone()),
            started_at: timestamp(outcome.started_at),
            ended_at: timestamp(ended),
            duration_ms: outcome.elapsed.as_millis() as u64,
            attempts: outcome.attempts.clone(),
            definition: Some(step.definition.clone()),
            input_sha256: outcome.input_sha256.clone(),
            upstream: Some(outcome.upstream.clone()),
            cached: outcome.source == step::Source::Cached,
        };
        let line = JournalLine {
            step: step.spec.id.clone(),
            status,
            attempts: outcome.attempts.len() as u32,
            input_sha256: outcome.input_sha256.clone(),
            ended_at: record.ended_at.clone(),
        };
        self.store.write_step(idx, record, line);
    }

    /// A step's result could not be written: it counts as failed, so that
    /// a resumed run calls it again. Returns what went wrong.
    fn lose(&mut self, lost: crate::store::LostResult) -> String {
        let summary = &mut self.summaries[lost.step];
        summary.status = StepStatus::Failed;
        summary.error = Some(format!("its result could not be saved: {}", lost.message));
        let id = &self.plan.step(lost.step).spec.id;
        self.progress.note(&format!(
            "step `{id}`: its result could not be saved: {}",
            lost.message
        ));
        lost.message
    }

    /// A reader of other steps' values is done: values nobody else reads
    /// are dropped, so memory tracks the live frontier, not the whole run.
    fn release_reads(&mut self, idx: StepIdx) {
        for &r in &self.plan.step(idx).reads {
            self.readers_left[r] -= 1;
            if self.readers_left[r] == 0 {
                self.values[r] = None;
            }
        }
    }

    fn all_succeeded(&self) -> bool {
        self.summaries
            .iter()
            .all(|s| s.status == StepStatus::Succeeded)
    }

    /// Renders each output whose steps all succeeded; names the others.
    fn outputs(&self) -> OutputsRecord {
        let mut record = OutputsRecord::default();
        for output in self.plan.outputs() {
            let blocked = output.reads.iter().find(|&&r| self.values[r].is_none());
            if let Some(&r) = blocked {
                let s = &self.summaries[r];
                let why = format!(
                    "step `{}` {}",
                    self.plan.step(r).spec.id,
                    s.status.as_str().replace('_', " ")
                );
                record.missing.insert(output.name.clone(), why);
                continue;
            }
            let reads: Vec<(String, Arc<Value>)> = output
                .reads
                .iter()
                .map(|&r| {
                    (
                        self.plan.step(r).spec.id.clone(),
                        self.values[r].clone().expect("checked above"),
                    )
                })
                .collect();
            let context = step::context(&self.plan, &self.shared, &reads);
            match self.plan.templates().render(&output.template, &context) {
                Ok(text) => {
                    record
                        .outputs
                        .insert(output.name.clone(), Value::String(text));
                }
                Err(e) => {
                    record
                        .missing
                        .insert(output.name.clone(), format!("failed to render: {e}"));
                }
            }
        }
        record
    }
}

/// The hash that stands for a succeeded step and everything upstream of
/// it: a change anywhere above a step, to a definition, an input or a
/// result, changes the lineage its dependents see.
fn lineage(plan: &Plan, outcome: &StepOutcome, reply: &crate::agent::Reply) -> String {
    let raw = serde_json::to_vec(&reply.raw).expect("replies serialize to JSON");
    let step = plan.step(outcome.idx);
    crate::hash::sha256_parts([
        outcome.upstream.as_bytes(),
        step.definition.as_bytes(),
        outcome
            .input_sha256
            .as_deref()
            .unwrap_or_default()
            .as_bytes(),
        raw.as_slice(),
    ])
}

/// A step whose task panicked failed; the run goes on.
fn panic_outcome(idx: StepIdx, e: tokio::task::JoinError) -> StepOutcome {
    let panic = e.into_panic();
    let message = panic
        .downcast_ref::<&str>()
        .map(|s| s.to_string())
        .or_else(|| panic.downcast_ref::<String>().cloned())
        .unwrap_or_else(|| "unknown panic".into());
    StepOutcome {
        idx,
        result: Err(step::Failure {
            message: format!("internal error in step: {message}"),
            stops_run: false,
        }),
        input: None,
        input_sha256: None,
        source: step::Source::Called,
        attempts: Vec::new(),
        started_at: SystemTime::now(),
        elapsed: std::time::Duration::ZERO,
        slot: None,
        upstream: String::new(),
    }
}

fn describe(action: &Action) -> String {
    match action {
        Action::Agent(agent) => format!("agent {agent}"),
        Action::Run(args) => format!("run {}", args.join(" ")),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn a_panicking_step_becomes_that_steps_failure() {
        let joined = tokio::spawn(async {
            panic!("the backend broke: {}", 42);
        })
        .await;
        let outcome = panic_outcome(3, joined.unwrap_err());
        assert_eq!(outcome.idx, 3);
        let failure = outcome.result.expect_err("a panic is a failure");
        assert_eq!(
            failure.message,
            "internal error in step: the backend broke: 42"
        );
        assert!(!failure.stops_run, "other steps go on");
    }
}
