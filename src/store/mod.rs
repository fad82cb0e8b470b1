//! Results on disk: one directory per run, every file written whole or not
//! at all, step results written the moment each step ends.
//!
//! Layout under the output directory:
//!
//! ```text
//! <out>/<workflow>/<run id>/run.json       the run, rewritten at start and end
//!                           steps/<id>.json one per step that ran
//!                           outputs.json    the workflow's outputs
//!                           journal.jsonl   one line per finished step
//! ```
//!
//! Step files are written by a few threads of their own, several at once
//! and in batches that share one sync, so the scheduler never waits for
//! the disk. The journal is appended by one thread that syncs once per
//! batch of lines.

mod atomic;
pub mod cache;
mod journal;
mod lock;
pub mod previous;
pub mod provenance;
pub mod record;
mod writers;

use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};

use serde::Serialize;

use atomic::write_atomic;
use journal::Journal;
pub use record::{AttemptRecord, JournalLine, RunRecord, StepRecord, StepStatus, StepSummary};
pub use writers::LostResult;
use writers::Writers;

/// A failure to write results.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    #[error("cannot create run directory `{path}`")]
    Create {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("output path `{path}` is a symbolic link; baton does not follow it")]
    Symlink { path: PathBuf },
    #[error("run directory `{path}` is in use by another baton process")]
    Busy { path: PathBuf },
    #[error("no run to resume at `{dir}`")]
    NoSuchRun { dir: PathBuf },
    #[error("cannot write `{path}`")]
    Write {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("cannot remove `{path}`")]
    Remove {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
}

/// The directory of one run, open for writing.
pub struct RunStore {
    dir: PathBuf,
    /// `None` once [`RunStore::finish`] has run, as is `journal`.
    writers: Option<Writers>,
    errors: Arc<Mutex<Vec<StoreError>>>,
    /// Where writers report a lost step result the moment it happens.
    lost: Option<tokio::sync::mpsc::UnboundedReceiver<LostResult>>,
    journal: Option<Journal>,
    _lock: lock::RunLock,
}

impl RunStore {
    /// Creates `<out>/<workflow>/<run id>/` and its `steps/` folder, and
    /// proves the directory writable before any step runs.
    pub fn create(out: &Path, workflow: &str, run_id: &str) -> Result<RunStore, StoreError> {
        let dir = out.join(workflow).join(run_id);
        let create = |path: &Path| {
            std::fs::create_dir_all(path).map_err(|source| StoreError::Create {
                path: path.to_owned(),
                source,
            })
        };
        // Checked before and after creating: a link made in between is
        // caught too, before anything is written through it.
        refuse_symlinks(out, &dir)?;
        create(&dir.join("steps"))?;
        RunStore::open(out, dir)
    }

    /// Opens an existing run directory under `out` to go on writing in it:
    /// takes its lock, then removes temporary files a killed process left
    /// behind.
    pub fn open(out: &Path, dir: PathBuf) -> Result<RunStore, StoreError> {
        refuse_symlinks(out, &dir.join("steps"))?;
        refuse_symlinks(out, &dir.join("journal.jsonl"))?;
        refuse_symlinks(out, &dir.join(".lock"))?;
        let lock = lock::acquire(&dir)?;
        previous::clean_temp_files(&dir);
        std::fs::create_dir_all(dir.join("steps")).map_err(|source| StoreError::Create {
            path: dir.join("steps"),
            source,
        })?;
        let journal =
            Journal::open(&dir.join("journal.jsonl")).map_err(|source| StoreError::Write {
                path: dir.join("journal.jsonl"),
                source,
            })?;
        let errors = Arc::default();
        let (lost_sender, lost) = tokio::sync::mpsc::unbounded_channel();
        let writers = Writers::start(
            dir.join("steps"),
            journal.sender(),
            Arc::clone(&errors),
            lost_sender,
        );
        Ok(RunStore {
            dir,
            writers: Some(writers),
            errors,
            lost: Some(lost),
            journal: Some(journal),
            _lock: lock,
        })
    }

    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// Writes `value` to `name` in the run directory, now, on this thread.
    pub fn write_now<T: Serialize>(&self, name: &str, value: &T) -> Result<(), StoreError> {
        let path = self.dir.join(name);
        write_json(&path, value)
    }

    /// Queues a step's result: a writer thread writes its file, then its
    /// journal line is appended. Errors surface in [`finish`].
    ///
    /// [`finish`]: RunStore::finish
    pub fn write_step(&mut self, step: usize, record: StepRecord, line: JournalLine) {
        let path = self.dir.join("steps").join(format!("{}.json", record.step));
        match &self.writers {
            Some(writers) => writers.queue(step, path, record, line),
            None => unreachable!("no step is written after the run finished"),
        }
    }

    /// The stream of step results that could not be written, for the run
    /// to react to; it can be taken once.
    pub fn take_lost(&mut self) -> tokio::sync::mpsc::UnboundedReceiver<LostResult> {
        self.lost.take().expect("the lost results are taken once")
    }

    /// Waits for every queued write and the journal, returning the write
    /// errors met along the way. The directory stays locked until the
    /// store is dropped, so the final `run.json` is still written under it.
    pub async fn finish(&mut self) -> Vec<StoreError> {
        let writers = self.writers.take();
        let mut journal = self.journal.take();
        let closed = tokio::task::spawn_blocking(move || {
            // The writers hold journal senders: they end first.
            let written = writers.map_or(Ok(()), Writers::finish);
            let journaled = journal.as_mut().map_or(Ok(()), Journal::close);
            written.and(journaled)
        })
        .await
        .unwrap_or_else(|_| Err(std::io::Error::other("a result writer panicked")));
        let mut errors = std::mem::take(&mut *self.errors.lock().expect("writers are done"));
        if let Err(source) = closed {
            errors.push(StoreError::Write {
                path: self.dir.join("journal.jsonl"),
                source,
            });
        }
        errors
    }
}

fn write_json<T: Serialize + ?Sized>(path: &Path, value: &T) -> Result<(), StoreError> {
    let mut bytes = serde_json::to_vec_pretty(value).expect("records serialize to JSON");
    bytes.push(b'\n');
    write_atomic(path, &bytes).map_err(|source| StoreError::Write {
        path: path.to_owned(),
        source,
    })
}

/// Refuses `path` if it, or any folder between `out` and it, is a
/// symbolic link; `out` itself counts, however it is spelled (`link/`,
/// `link/.`). Folders above `out` are the user's own business.
fn refuse_symlinks(out: &Path, path: &Path) -> Result<(), StoreError> {
    let out: PathBuf = out.components().collect();
    let mut at = out.clone();
    let below = path.strip_prefix(&out).unwrap_or(path).components();
    for part in std::iter::once(None).chain(below.map(Some)) {
        if let Some(part) = part {
            at.push(part);
        }
        match std::fs::symlink_metadata(&at) {
            Ok(meta) if meta.file_type().is_symlink() => {
                return Err(StoreError::Symlink { path: at });
            }
            Ok(_) => {}
            // What does not exist yet is created as a real folder.
            Err(_) => return Ok(()),
        }
    }
    Ok(())
}

/// A new run id: the UTC start time to the millisecond, which sorts, and
/// four random hex digits, which keep two runs in the same millisecond apart.
pub fn new_run_id() -> String {
    let stamp = humantime::format_rfc3339_millis(std::time::SystemTime::now()).to_string();
    let compact: String = stamp.chars().filter(|c| *c != '-' && *c != ':').collect();
    format!("{compact}-{:04x}", fastrand::u16(..))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn run_ids_sort_by_time() {
        let a = new_run_id();
        std::thread::sleep(std::time::Duration::from_millis(3));
        let b = new_run_id();
        assert!(a < b, "{a} {b}");
        assert!(a.ends_with(|c: char| c.is_ascii_hexdigit()));
        assert!(!a.contains(':'));
    }

    #[tokio::test]
    async fn step_files_and_journal_are_written() {
        let tmp = tempfile::tempdir().unwrap();
        let mut store = RunStore::create(tmp.path(), "wf", "r1").unwrap();
        let record = StepRecord::for_test("a");
        let line = JournalLine::for_test("a");
        store.write_step(0, record, line);
        assert!(store.finish().await.is_empty());
        let dir = tmp.path().join("wf/r1");
        let step: serde_json::Value =
            serde_json::from_slice(&std::fs::read(dir.join("steps/a.json")).unwrap()).unwrap();
        assert_eq!(step["step"], "a");
        let journal = std::fs::read_to_string(dir.join("journal.jsonl")).unwrap();
        assert_eq!(journal.lines().count(), 1);
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_batch_keeps_every_result_but_the_one_that_cannot_be_written() {
        let tmp = tempfile::tempdir().unwrap();
        let mut store = RunStore::create(tmp.path(), "wf", "r1").unwrap();
        let dir = tmp.path().join("wf/r1");
        // A folder where step 7's file belongs makes its rename fail.
        std::fs::create_dir(dir.join("steps/s7.json")).unwrap();
        std::fs::write(dir.join("steps/s7.json/keep"), b"x").unwrap();
        let mut lost = store.take_lost();
        // More than a batch and more than the queue holds, so some writers
        // take full batches and the run waits for them at least once.
        let n = 1200;
        for i in 0..n {
            let id = format!("s{i}");
            store.write_step(i, StepRecord::for_test(&id), JournalLine::for_test(&id));
        }
        let errors = store.finish().await;
        assert_eq!(errors.len(), 1, "{errors:?}");
        let failed = lost.try_recv().expect("the failure is reported");
        assert_eq!(failed.step, 7);
        assert!(failed.message.contains("s7.json"), "{}", failed.message);
        assert!(lost.try_recv().is_err(), "only one failure");

        let names: Vec<String> = std::fs::read_dir(dir.join("steps"))
            .unwrap()
            .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
            .collect();
        assert_eq!(names.len(), n, "every file but s7's, and s7's folder");
        assert!(names.iter().all(|n| !n.starts_with(atomic::TEMP_PREFIX)));
        let journal = journal::read(&dir.join("journal.jsonl"));
        assert_eq!(journal.len(), n - 1);
        assert!(journal.iter().all(|l| l.step != "s7"));
        let step: serde_json::Value =
            serde_json::from_slice(&std::fs::read(dir.join("steps/s1199.json")).unwrap()).unwrap();
        assert_eq!(step["step"], "s1199");
    }

    #[test]
    fn refuses_symlinked_output() {
        let tmp = tempfile::tempdir().unwrap();
        let real = tmp.path().join("real");
        std::fs::create_dir(&real).unwrap();
        let link = tmp.path().join("link");
        std::os::unix::fs::symlink(&real, &link).unwrap();
        assert!(matches!(
            RunStore::create(&link, "wf", "r"),
            Err(StoreError::Symlink { .. })
        ));
        let slashed = PathBuf::from(format!("{}/", link.display()));
        assert!(matches!(
            RunStore::create(&slashed, "wf", "r"),
            Err(StoreError::Symlink { .. })
        ));
        assert!(matches!(
            RunStore::create(&link.join("."), "wf", "r"),
            Err(StoreError::Symlink { .. })
        ));
        assert!(std::fs::read_dir(&real).unwrap().next().is_none());
    }

    #[test]
    fn refuses_links_inside_the_run_directory() {
        let tmp = tempfile::tempdir().unwrap();
        let out = tmp.path().join("out");
        let dir = out.join("wf/r1");
        std::fs::create_dir_all(&dir).unwrap();
        let elsewhere = tmp.path().join("elsewhere");
        std::fs::create_dir(&elsewhere).unwrap();
        std::os::unix::fs::symlink(&elsewhere, dir.join("steps")).unwrap();
        assert!(matches!(
            RunStore::open(&out, dir.clone()),
            Err(StoreError::Symlink { .. })
        ));
        std::fs::remove_file(dir.join("steps")).unwrap();
        std::os::unix::fs::symlink(elsewhere.join("j"), dir.join("journal.jsonl")).unwrap();
        assert!(matches!(
            RunStore::open(&out, dir),
            Err(StoreError::Symlink { .. })
        ));
        assert!(std::fs::read_dir(&elsewhere).unwrap().next().is_none());
    }
}
