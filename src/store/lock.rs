//! One writer per run directory: an exclusive lock on `.lock` inside it,
//! held for as long as the run goes on and released by the system when the
//! process ends, however it ends.

use std::fs::{File, TryLockError};
use std::path::Path;

use super::StoreError;

/// Holds the lock until dropped.
#[derive(Debug)]
pub struct RunLock {
    _file: File,
}

pub fn acquire(dir: &Path) -> Result<RunLock, StoreError> {
    let path = dir.join(".lock");
    let file = std::fs::OpenOptions::new()
        .create(true)
        .truncate(false)
        .write(true)
        .open(&path)
        .map_err(|source| StoreError::Write {
            path: path.clone(),
            source,
        })?;
    match file.try_lock() {
        Ok(()) => Ok(RunLock { _file: file }),
        Err(TryLockError::WouldBlock) => Err(StoreError::Busy {
            path: dir.to_owned(),
        }),
        Err(TryLockError::Error(source)) => Err(StoreError::Write { path, source }),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_second_lock_is_refused_until_the_first_is_dropped() {
        let tmp = tempfile::tempdir().unwrap();
        let first = acquire(tmp.path()).unwrap();
        assert!(matches!(acquire(tmp.path()), Err(StoreError::Busy { .. })));
        drop(first);
        assert!(acquire(tmp.path()).is_ok());
    }
}
