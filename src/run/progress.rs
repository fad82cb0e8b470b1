//! What a person watching a run sees on stderr: each step starting and
//! ending, and a summary at the end. Results go to files and, with
//! `--json`, to stdout; never here. With `--log-format json` each line is
//! a JSON object instead, for a program to follow.

use std::io::Write;
use std::time::{Duration, SystemTime};

use serde_json::{json, Value};

use crate::store::{RunRecord, StepStatus};

/// Writes progress lines; silent when `quiet`.
#[derive(Debug, Clone, Copy)]
pub struct Progress {
    pub quiet: bool,
    /// One JSON object a line, each with an `event` and the time `at`.
    pub json: bool,
}

impl Progress {
    pub fn started(&self, step: &str, what: &str) {
        if self.json {
            return self.event("start", json!({ "step": step, "what": what }));
        }
        self.line(format_args!("  start    {step} ({what})"));
    }

    pub fn finished(&self, step: &str, status: StepStatus, elapsed: Duration, error: Option<&str>) {
        if self.json {
            let fields = json!({
                "step": step,
                "status": status,
                "elapsed_ms": elapsed.as_millis() as u64,
                "error": error,
            });
            return self.event("finish", fields);
        }
        let secs = elapsed.as_secs_f64();
        match error {
            Some(e) => self.line(format_args!(
                "  {:<8} {step} after {secs:.2}s: {e}",
                label(status)
            )),
            None => self.line(format_args!("  {:<8} {step} in {secs:.2}s", label(status))),
        }
    }

    /// A step whose result came without a call: `how` says from where.
    pub fn recalled(&self, step: &str, how: &str) {
        if self.json {
            return self.event(how, json!({ "step": step }));
        }
        self.line(format_args!("  {how:<8} {step}"));
    }

    pub fn note(&self, text: &str) {
        if self.json {
            return self.event("note", json!({ "message": text }));
        }
        self.line(format_args!("{text}"));
    }

    pub fn skipped(&self, step: &str, reason: &str) {
        if self.json {
            return self.event("skipped", json!({ "step": step, "reason": reason }));
        }
        self.line(format_args!("  skipped  {step}: {reason}"));
    }

    /// A table of every step, then where the results are.
    pub fn summary(&self, record: &RunRecord, dir: &std::path::Path) {
        if self.quiet {
            return;
        }
        if self.json {
            let fields = json!({
                "run_id": record.run_id,
                "status": record.status,
                "dir": dir.display().to_string(),
                "steps": record.steps,
            });
            return self.event("summary", fields);
        }
        let width = record
            .steps
            .keys()
            .map(String::len)
            .max()
            .unwrap_or(4)
            .max(4);
        let mut out = String::new();
        out.push_str(&format!("\nrun {} {}\n", record.run_id, record.status));
        for (id, step) in &record.steps {
            let time = step
                .duration_ms
                .map(|ms| format!("{:.2}s", ms as f64 / 1000.0))
                .unwrap_or_else(|| "-".into());
            let why = match (step.reused, step.cached) {
                (true, _) => "reused from an earlier attempt",
                (_, true) => "from the cache",
                _ => step
                    .error
                    .as_deref()
                    .or(step.reason.as_deref())
                    .unwrap_or(""),
            };
            out.push_str(&format!(
                "  {id:<width$}  {:<11} {time:>8}  {}\n",
                step.status.as_str(),
                first_line(why)
            ));
        }
        out.push_str(&format!("results: {}\n", dir.display()));
        let _ = std::io::stderr().write_all(out.as_bytes());
    }

    fn line(&self, args: std::fmt::Arguments<'_>) {
        if !self.quiet {
            let _ = writeln!(std::io::stderr(), "{args}");
        }
    }

    /// One JSON line: `event`, `at`, then `fields`.
    fn event(&self, event: &str, fields: Value) {
        if self.quiet {
            return;
        }
        let mut line = serde_json::Map::new();
        line.insert("event".into(), event.into());
        let at = humantime::format_rfc3339_millis(SystemTime::now()).to_string();
        line.insert("at".into(), at.into());
        if let Value::Object(fields) = fields {
            line.extend(fields);
        }
        let mut text = Value::Object(line).to_string();
        text.push('\n');
        let _ = std::io::stderr().write_all(text.as_bytes());
    }
}

fn label(status: StepStatus) -> &'static str {
    match status {
        StepStatus::Succeeded => "ok",
        StepStatus::Failed => "FAILED",
        StepStatus::Cancelled => "cancelled",
        StepStatus::Skipped => "skipped",
        StepStatus::NotStarted => "not run",
    }
}

fn first_line(text: &str) -> &str {
    text.lines().next().unwrap_or("")
}
