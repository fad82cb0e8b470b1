//! The run's journal: one JSON line per finished step, appended by a single
//! thread that syncs once for each batch of lines waiting, so steps that
//! finish together share one sync.
//!
//! A line arrives once its step file is whole under its final name; before
//! writing a batch, the thread syncs the `steps` directory, so each line in
//! the journal vouches for a step file that survives a power cut. One
//! directory sync per batch instead of one per file.

use std::fs::File;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::sync::mpsc;
use std::thread::JoinHandle;

use super::record::JournalLine;

pub struct Journal {
    sender: Option<mpsc::Sender<Vec<u8>>>,
    thread: Option<JoinHandle<std::io::Result<()>>>,
}

/// A handle that step writers use to append lines.
#[derive(Clone)]
pub struct JournalSender(mpsc::Sender<Vec<u8>>);

impl JournalSender {
    pub fn append(&self, line: &JournalLine) {
        let mut bytes = serde_json::to_vec(line).expect("journal lines serialize");
        bytes.push(b'\n');
        // The thread ends only after every sender is gone.
        let _ = self.0.send(bytes);
    }
}

impl Journal {
    /// Opens the journal at `path`; `steps` is the directory whose renames
    /// each batch makes durable first.
    pub fn open(path: &Path, steps: PathBuf) -> std::io::Result<Journal> {
        let file = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(path)?;
        let (sender, receiver) = mpsc::channel();
        let thread = std::thread::Builder::new()
            .name("baton-journal".into())
            .spawn(move || append_loop(file, &steps, receiver))?;
        Ok(Journal {
            sender: Some(sender),
            thread: Some(thread),
        })
    }

    pub fn sender(&self) -> JournalSender {
        JournalSender(self.sender.clone().expect("journal is open"))
    }

    /// Stops accepting lines and waits until every line is synced.
    pub fn close(&mut self) -> std::io::Result<()> {
        self.sender.take();
        match self.thread.take() {
            Some(thread) => thread
                .join()
                .unwrap_or_else(|_| Err(std::io::Error::other("journal thread panicked"))),
            None => Ok(()),
        }
    }
}

fn append_loop(
    mut file: File,
    steps: &Path,
    receiver: mpsc::Receiver<Vec<u8>>,
) -> std::io::Result<()> {
    while let Ok(first) = receiver.recv() {
        let mut batch = first;
        while let Ok(more) = receiver.try_recv() {
            batch.extend_from_slice(&more);
        }
        super::atomic::sync_dir(steps)?;
        file.write_all(&batch)?;
        file.sync_data()?;
    }
    Ok(())
}
