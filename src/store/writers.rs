//! The threads that write step files. A fixed few: several writes in flight
//! go several times faster than one after another, but many threads
//! creating files in one directory at once mostly spin on its lock, and a
//! 10,000-step run then spends more time in the kernel than writing.
//!
//! Each thread takes the results waiting, up to [`BATCH`], and writes them
//! in four moves: every file under a temporary name; one sync for all of
//! them; the renames; one sync of the folder. Only then do their journal
//! lines go out. A crash at any moment leaves whole files: a final name
//! only ever points at contents already on disk.

use std::path::{Path, PathBuf};
use std::sync::{mpsc, Arc, Mutex};
use std::thread::JoinHandle;

use tokio::sync::mpsc::UnboundedSender;

use super::atomic;
use super::journal::JournalSender;
use super::{JournalLine, StepRecord, StoreError};

/// A step whose result file could not be written, and why: the run stops
/// calling agents once its results can no longer be kept.
#[derive(Debug)]
pub struct LostResult {
    pub step: usize,
    pub message: String,
}

/// How many step files are written at once.
const THREADS: usize = 4;

/// Most results one thread writes with one sync.
const BATCH: usize = 64;

/// How many finished results may wait for the disk. Past that, the run
/// waits for the writers before it settles another step, so memory stays
/// flat when steps finish faster than the disk can keep them.
const QUEUE: usize = 512;

struct Job {
    step: usize,
    path: PathBuf,
    record: StepRecord,
    line: JournalLine,
}

pub struct Writers {
    sender: mpsc::SyncSender<Job>,
    threads: Vec<JoinHandle<()>>,
}

impl Writers {
    /// Starts the threads; each written file's line goes to `journal`, each
    /// failure into `errors` and, at once, to `lost`.
    pub fn start(
        steps: PathBuf,
        journal: JournalSender,
        errors: Arc<Mutex<Vec<StoreError>>>,
        lost: UnboundedSender<LostResult>,
    ) -> Writers {
        let (sender, receiver) = mpsc::sync_channel::<Job>(QUEUE);
        let receiver = Arc::new(Mutex::new(receiver));
        let threads = (0..THREADS)
            .map(|n| {
                let receiver = Arc::clone(&receiver);
                let journal = journal.clone();
                let errors = Arc::clone(&errors);
                let lost = lost.clone();
                let steps = steps.clone();
                std::thread::Builder::new()
                    .name(format!("baton-writer-{n}"))
                    .spawn(move || {
                        let failures = Failures { errors, lost };
                        write_loop(&receiver, &steps, &journal, &failures)
                    })
                    .expect("the system can start a thread")
            })
            .collect();
        Writers { sender, threads }
    }

    pub fn queue(&self, step: usize, path: PathBuf, record: StepRecord, line: JournalLine) {
        let job = Job {
            step,
            path,
            record,
            line,
        };
        // The threads only stop once `finish` drops the sender, so sending
        // fails only if they all panicked; `finish` reports that.
        let job = match self.sender.try_send(job) {
            Err(mpsc::TrySendError::Full(job)) => job,
            _ => return,
        };
        let wait = || drop(self.sender.send(job));
        let flavor = tokio::runtime::Handle::try_current().map(|h| h.runtime_flavor());
        match flavor {
            // Lets the runtime move its other work off this thread first.
            Ok(tokio::runtime::RuntimeFlavor::MultiThread) => tokio::task::block_in_place(wait),
            _ => wait(),
        }
    }

    /// Writes everything queued, then stops the threads.
    pub fn finish(self) -> std::io::Result<()> {
        drop(self.sender);
        let mut panicked = 0;
        for thread in self.threads {
            panicked += usize::from(thread.join().is_err());
        }
        match panicked {
            0 => Ok(()),
            n => Err(std::io::Error::other(format!(
                "{n} result writer thread(s) panicked; some step files may be missing"
            ))),
        }
    }
}

/// Where a writer thread reports results it could not write.
struct Failures {
    errors: Arc<Mutex<Vec<StoreError>>>,
    lost: UnboundedSender<LostResult>,
}

impl Failures {
    fn report(&self, job: Job, source: std::io::Error) {
        let message = format!("cannot write `{}`: {source}", job.path.display());
        // The run may have ended already; the error is kept anyway.
        let _ = self.lost.send(LostResult {
            step: job.step,
            message,
        });
        self.errors
            .lock()
            .expect("no writer panics holding the errors")
            .push(StoreError::Write {
                path: job.path,
                source,
            });
    }
}

fn write_loop(
    receiver: &Mutex<mpsc::Receiver<Job>>,
    steps: &Path,
    journal: &JournalSender,
    failures: &Failures,
) {
    loop {
        let batch = take_batch(receiver);
        if batch.is_empty() {
            return;
        }
        let mut written = Vec::with_capacity(batch.len());
        for job in batch {
            let mut bytes =
                serde_json::to_vec_pretty(&job.record).expect("records serialize to JSON");
            bytes.push(b'\n');
            match atomic::write_temp(&job.path, &bytes) {
                Ok(temp) => written.push((job, temp)),
                Err(e) => failures.report(job, e),
            }
        }
        let temps: Vec<&Path> = written.iter().map(|(_, t)| t.as_path()).collect();
        let synced = atomic::sync_files(steps, &temps);
        let mut placed = Vec::with_capacity(written.len());
        for (job, temp) in written {
            let result = match &synced {
                Ok(()) => std::fs::rename(&temp, &job.path),
                Err(e) => Err(std::io::Error::new(e.kind(), e.to_string())),
            };
            match result {
                Ok(()) => placed.push(job),
                Err(e) => {
                    let _ = std::fs::remove_file(&temp);
                    failures.report(job, e);
                }
            }
        }
        if placed.is_empty() {
            continue;
        }
        match atomic::sync_dir(steps) {
            Ok(()) => placed.iter().for_each(|job| journal.append(&job.line)),
            Err(e) => {
                for job in placed {
                    failures.report(job, std::io::Error::new(e.kind(), e.to_string()));
                }
            }
        }
    }
}

/// The next results to write: one, waited for, and those queued behind
/// it, up to [`BATCH`]. Empty once the queue is closed and drained.
fn take_batch(receiver: &Mutex<mpsc::Receiver<Job>>) -> Vec<Job> {
    let receiver = receiver.lock().expect("no writer panics holding the queue");
    let Ok(first) = receiver.recv() else {
        return Vec::new();
    };
    let mut batch = vec![first];
    while batch.len() < BATCH {
        match receiver.try_recv() {
            Ok(job) => batch.push(job),
            Err(_) => break,
        }
    }
    batch
}
