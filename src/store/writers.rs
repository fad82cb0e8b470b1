//! The threads that write step files. A fixed few: several writes in flight
//! go several times faster than one after another, but many threads
//! creating files in one directory at once mostly spin on its lock, and a
//! 10,000-step run then spends more time in the kernel than writing.

use std::path::PathBuf;
use std::sync::{mpsc, Arc, Mutex};
use std::thread::JoinHandle;

use tokio::sync::mpsc::UnboundedSender;

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

struct Job {
    step: usize,
    path: PathBuf,
    record: StepRecord,
    line: JournalLine,
}

pub struct Writers {
    sender: mpsc::Sender<Job>,
    threads: Vec<JoinHandle<()>>,
}

impl Writers {
    /// Starts the threads; each written file's line goes to `journal`, each
    /// failure into `errors` and, at once, to `lost`.
    pub fn start(
        journal: JournalSender,
        errors: Arc<Mutex<Vec<StoreError>>>,
        lost: UnboundedSender<LostResult>,
    ) -> Writers {
        let (sender, receiver) = mpsc::channel::<Job>();
        let receiver = Arc::new(Mutex::new(receiver));
        let threads = (0..THREADS)
            .map(|n| {
                let receiver = Arc::clone(&receiver);
                let journal = journal.clone();
                let errors = Arc::clone(&errors);
                let lost = lost.clone();
                std::thread::Builder::new()
                    .name(format!("baton-writer-{n}"))
                    .spawn(move || write_loop(&receiver, &journal, &errors, &lost))
                    .expect("the system can start a thread")
            })
            .collect();
        Writers { sender, threads }
    }

    pub fn queue(&self, step: usize, path: PathBuf, record: StepRecord, line: JournalLine) {
        // The threads only stop once `finish` drops the sender.
        let _ = self.sender.send(Job {
            step,
            path,
            record,
            line,
        });
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

fn write_loop(
    receiver: &Mutex<mpsc::Receiver<Job>>,
    journal: &JournalSender,
    errors: &Mutex<Vec<StoreError>>,
    lost: &UnboundedSender<LostResult>,
) {
    loop {
        let job = {
            let receiver = receiver.lock().expect("no writer panics holding the queue");
            receiver.recv()
        };
        let Ok(job) = job else { return };
        let mut bytes = serde_json::to_vec_pretty(&job.record).expect("records serialize to JSON");
        bytes.push(b'\n');
        match super::atomic::replace(&job.path, &bytes) {
            Ok(()) => journal.append(&job.line),
            Err(source) => {
                let message = format!("cannot write `{}`: {source}", job.path.display());
                // The run may have ended already; the error is kept anyway.
                let _ = lost.send(LostResult {
                    step: job.step,
                    message,
                });
                let error = StoreError::Write {
                    path: job.path,
                    source,
                };
                errors
                    .lock()
                    .expect("no writer panics holding the errors")
                    .push(error);
            }
        }
    }
}
