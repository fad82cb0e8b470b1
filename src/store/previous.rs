//! Reading back a run directory to resume it: which run, what it was given,
//! and which steps finished. Only whole files are trusted, and a step counts
//! as finished only when its own file says it succeeded. The journal says
//! which steps finished in the order they did; a step it names whose file
//! is gone or torn is reported and runs again.

use std::collections::HashMap;
use std::path::{Path, PathBuf};

use super::atomic::TEMP_PREFIX;
use super::record::{RunRecord, StepRecord, StepStatus};
use super::StoreError;

/// What an earlier run of the same workflow left on disk.
#[derive(Debug)]
pub struct Previous {
    pub dir: PathBuf,
    pub run_id: String,
    /// `run.json`, when it could be read.
    pub run: Option<RunRecord>,
    /// Steps that succeeded, by id.
    pub succeeded: HashMap<String, StepRecord>,
    /// Steps the journal records as succeeded whose result file could not
    /// be read.
    pub unreadable: Vec<String>,
}

/// Finds the run directory `which` (a run id, or `latest`) of `workflow`.
pub fn find(out: &Path, workflow: &str, which: &str) -> Result<PathBuf, StoreError> {
    let parent = out.join(workflow);
    if which != "latest" {
        let dir = parent.join(which);
        return match is_run_id(which) && is_run_dir(&dir) {
            true => Ok(dir),
            false => Err(StoreError::NoSuchRun { dir }),
        };
    }
    let mut ids: Vec<String> = std::fs::read_dir(&parent)
        .map_err(|_| StoreError::NoSuchRun {
            dir: parent.clone(),
        })?
        .filter_map(|e| e.ok())
        .filter_map(|e| e.file_name().into_string().ok())
        .filter(|name| is_run_id(name) && is_run_dir(&parent.join(name)))
        .collect();
    ids.sort();
    match ids.pop() {
        Some(id) => Ok(parent.join(id)),
        None => Err(StoreError::NoSuchRun { dir: parent }),
    }
}

/// A name a run directory can have: one path component, not hidden.
fn is_run_id(name: &str) -> bool {
    !name.is_empty() && !name.starts_with('.') && !name.contains(['/', '\\'])
}

/// A real folder (not a link to one) that a run has written its record in.
fn is_run_dir(dir: &Path) -> bool {
    std::fs::symlink_metadata(dir).is_ok_and(|m| m.is_dir()) && dir.join("run.json").is_file()
}

/// Reads what the run in `dir` finished. Call with the run's lock held.
pub fn load(dir: &Path) -> Previous {
    let run_id = dir
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default();
    let run = read_run(dir);
    let mut succeeded = HashMap::new();
    if let Ok(entries) = std::fs::read_dir(dir.join("steps")) {
        for entry in entries.filter_map(|e| e.ok()) {
            let name = entry.file_name().to_string_lossy().into_owned();
            if name.starts_with(TEMP_PREFIX) || !name.ends_with(".json") {
                continue;
            }
            if let Some(step) = read_json::<StepRecord>(&entry.path()) {
                if step.status == StepStatus::Succeeded {
                    succeeded.insert(step.step.clone(), step);
                }
            }
        }
    }
    let mut unreadable: Vec<String> = super::journal::read(&dir.join("journal.jsonl"))
        .into_iter()
        .filter(|line| line.status == StepStatus::Succeeded)
        .filter(|line| !succeeded.contains_key(&line.step))
        .map(|line| line.step)
        .collect();
    unreadable.sort();
    unreadable.dedup();
    Previous {
        dir: dir.to_owned(),
        run_id,
        run,
        succeeded,
        unreadable,
    }
}

/// Removes temporary files that a killed process left half-written.
pub fn clean_temp_files(dir: &Path) -> usize {
    let mut removed = 0;
    for folder in [dir.to_owned(), dir.join("steps")] {
        let Ok(entries) = std::fs::read_dir(&folder) else {
            continue;
        };
        for entry in entries.filter_map(|e| e.ok()) {
            if entry.file_name().to_string_lossy().starts_with(TEMP_PREFIX)
                && std::fs::remove_file(entry.path()).is_ok()
            {
                removed += 1;
            }
        }
    }
    removed
}

/// The `run.json` of the run in `dir`, when it can be read.
pub fn read_run(dir: &Path) -> Option<RunRecord> {
    read_json(&dir.join("run.json"))
}

fn read_json<T: serde::de::DeserializeOwned>(path: &Path) -> Option<T> {
    let bytes = std::fs::read(path).ok()?;
    serde_json::from_slice(&bytes).ok()
}
