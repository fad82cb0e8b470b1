//! The run's journal: one JSON line per finished step, appended by a single
//! thread that syncs once for each batch of lines waiting, so steps that
//! finish together share one sync.
//!
//! A line arrives only once its step file, and the rename that put it in
//! place, are on disk, so each line vouches for a step file that survives
//! a power cut.

use std::fs::File;
use std::io::{Read, Seek, SeekFrom, Write};
use std::path::Path;
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
    /// Opens the journal at `path` for appending.
    pub fn open(path: &Path) -> std::io::Result<Journal> {
        let file = std::fs::OpenOptions::new()
            .create(true)
            .read(true)
            .append(true)
            .open(path)?;
        drop_torn_line(&file)?;
        let (sender, receiver) = mpsc::channel();
        let thread = std::thread::Builder::new()
            .name("baton-journal".into())
            .spawn(move || append_loop(file, receiver))?;
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

/// A process killed mid-append can leave the last line without its end;
/// cut it off, so that the next line starts on a line of its own.
fn drop_torn_line(mut file: &File) -> std::io::Result<()> {
    let len = file.metadata()?.len();
    let mut end = len;
    let mut block = [0u8; 4096];
    while end > 0 {
        let start = end.saturating_sub(block.len() as u64);
        let part = &mut block[..(end - start) as usize];
        file.seek(SeekFrom::Start(start))?;
        file.read_exact(part)?;
        if let Some(i) = part.iter().rposition(|&b| b == b'\n') {
            end = start + i as u64 + 1;
            break;
        }
        end = start;
    }
    if end < len {
        file.set_len(end)?;
        file.sync_data()?;
    }
    Ok(())
}

/// The lines of the journal at `path` that parse, in order; a torn last
/// line is passed over.
pub fn read(path: &Path) -> Vec<JournalLine> {
    let Ok(text) = std::fs::read_to_string(path) else {
        return Vec::new();
    };
    text.lines()
        .filter_map(|line| serde_json::from_str(line).ok())
        .collect()
}

fn append_loop(mut file: File, receiver: mpsc::Receiver<Vec<u8>>) -> std::io::Result<()> {
    while let Ok(first) = receiver.recv() {
        let mut batch = first;
        while let Ok(more) = receiver.try_recv() {
            batch.extend_from_slice(&more);
        }
        file.write_all(&batch)?;
        file.sync_data()?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_torn_last_line_is_cut_before_appending() {
        let tmp = tempfile::tempdir().unwrap();
        let path = tmp.path().join("journal.jsonl");
        let whole = serde_json::to_string(&JournalLine::for_test("a")).unwrap();
        std::fs::write(&path, format!("{whole}\n{}", &whole[..20])).unwrap();
        let mut journal = Journal::open(&path).unwrap();
        journal.sender().append(&JournalLine::for_test("b"));
        journal.close().unwrap();
        let steps: Vec<String> = read(&path).into_iter().map(|l| l.step).collect();
        assert_eq!(steps, ["a", "b"]);
        let text = std::fs::read_to_string(&path).unwrap();
        assert_eq!(text.lines().count(), 2, "{text}");
    }

    #[test]
    fn a_journal_without_any_whole_line_starts_empty() {
        let tmp = tempfile::tempdir().unwrap();
        let path = tmp.path().join("journal.jsonl");
        std::fs::write(&path, "x".repeat(10_000)).unwrap();
        let mut journal = Journal::open(&path).unwrap();
        journal.close().unwrap();
        assert_eq!(std::fs::metadata(&path).unwrap().len(), 0);
    }
}
