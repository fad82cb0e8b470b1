//! What a person watching a run sees on stderr: each step starting and
//! ending, and a summary at the end. Results go to files and, with
//! `--json`, to stdout; never here.

use std::io::Write;
use std::time::Duration;

use crate::store::{RunRecord, StepStatus};

/// Writes progress lines; silent when `quiet`.
#[derive(Debug, Clone, Copy)]
pub struct Progress {
    pub quiet: bool,
}

impl Progress {
    pub fn started(&self, step: &str, what: &str) {
        self.line(format_args!("  start    {step} ({what})"));
    }

    pub fn finished(&self, step: &str, status: StepStatus, elapsed: Duration, error: Option<&str>) {
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
        self.line(format_args!("  {how:<8} {step}"));
    }

    pub fn note(&self, text: &str) {
        self.line(format_args!("{text}"));
    }

    pub fn skipped(&self, step: &str, reason: &str) {
        self.line(format_args!("  skipped  {step}: {reason}"));
    }

    /// A table of every step, then where the results are.
    pub fn summary(&self, record: &RunRecord, dir: &std::path::Path) {
        if self.quiet {
            return;
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
