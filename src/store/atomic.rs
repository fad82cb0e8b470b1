//! Whole-file writes: a temporary file beside the target, synced, renamed
//! over it, and the directory synced so the rename itself is durable.

use std::io::Write;
use std::path::Path;

/// Prefix of temporary files, so a later run can recognise and remove the
/// leftovers of a killed process.
pub const TEMP_PREFIX: &str = ".tmp-";

/// Writes `bytes` to `path` so that a crash at any moment leaves either the
/// old file or the new one, never a torn one.
pub fn write_atomic(path: &Path, bytes: &[u8]) -> std::io::Result<()> {
    replace(path, bytes)?;
    sync_dir(path.parent().unwrap_or(Path::new(".")))
}

/// The first half of [`write_atomic`]: the file is whole and synced under
/// its final name, but the rename is durable only once its directory is
/// synced. Many files written this way share one [`sync_dir`].
pub fn replace(path: &Path, bytes: &[u8]) -> std::io::Result<()> {
    let dir = path.parent().unwrap_or(Path::new("."));
    let name = path.file_name().and_then(|n| n.to_str()).unwrap_or("file");
    let temp = dir.join(format!("{TEMP_PREFIX}{name}.{:08x}", fastrand::u32(..)));
    let result = (|| {
        let mut file = std::fs::OpenOptions::new()
            .write(true)
            .create_new(true)
            .open(&temp)?;
        file.write_all(bytes)?;
        file.sync_all()?;
        std::fs::rename(&temp, path)
    })();
    if result.is_err() {
        let _ = std::fs::remove_file(&temp);
    }
    result
}

/// Makes the renames done in `dir` so far durable.
pub fn sync_dir(dir: &Path) -> std::io::Result<()> {
    std::fs::File::open(dir)?.sync_all()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn replaces_whole_file_and_leaves_no_temp() {
        let tmp = tempfile::tempdir().unwrap();
        let path = tmp.path().join("a.json");
        write_atomic(&path, b"one").unwrap();
        write_atomic(&path, b"two").unwrap();
        assert_eq!(std::fs::read(&path).unwrap(), b"two");
        let names: Vec<_> = std::fs::read_dir(tmp.path()).unwrap().collect();
        assert_eq!(names.len(), 1);
    }

    #[test]
    fn failure_leaves_old_file() {
        let tmp = tempfile::tempdir().unwrap();
        let path = tmp.path().join("missing-dir").join("a.json");
        assert!(write_atomic(&path, b"x").is_err());
    }
}
