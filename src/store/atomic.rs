//! Whole-file writes: a temporary file beside the target, synced, renamed
//! over it, and the directory synced so the rename itself is durable.

use std::fs::File;
use std::io::Write;
use std::path::{Path, PathBuf};

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
/// synced.
pub fn replace(path: &Path, bytes: &[u8]) -> std::io::Result<()> {
    let temp = write_temp(path, bytes)?;
    let result = sync_files(path.parent().unwrap_or(Path::new(".")), &[&temp])
        .and_then(|()| std::fs::rename(&temp, path));
    if result.is_err() {
        let _ = std::fs::remove_file(&temp);
    }
    result
}

/// Writes `bytes` to a new temporary file beside `path`, not yet synced,
/// and returns its path. A later rename puts it in place.
pub fn write_temp(path: &Path, bytes: &[u8]) -> std::io::Result<PathBuf> {
    let dir = path.parent().unwrap_or(Path::new("."));
    let name = path.file_name().and_then(|n| n.to_str()).unwrap_or("file");
    let temp = dir.join(format!("{TEMP_PREFIX}{name}.{:08x}", fastrand::u32(..)));
    let result = std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .open(&temp)
        .and_then(|mut file| file.write_all(bytes));
    match result {
        Ok(()) => Ok(temp),
        Err(e) => {
            let _ = std::fs::remove_file(&temp);
            Err(e)
        }
    }
}

/// Makes the contents of `files`, all in `dir`, durable. One file is
/// synced alone; for several, one sync of the whole file system costs far
/// less than one per file, where the system has it.
pub fn sync_files(dir: &Path, files: &[&Path]) -> std::io::Result<()> {
    match files {
        [] => Ok(()),
        [one] => File::open(one)?.sync_all(),
        _ => sync_file_system(dir, files),
    }
}

#[cfg(target_os = "linux")]
fn sync_file_system(dir: &Path, _files: &[&Path]) -> std::io::Result<()> {
    use std::os::fd::AsRawFd;
    let dir = File::open(dir)?;
    // SAFETY: the descriptor is open for as long as the call runs.
    match unsafe { libc::syncfs(dir.as_raw_fd()) } {
        0 => Ok(()),
        _ => Err(std::io::Error::last_os_error()),
    }
}

#[cfg(not(target_os = "linux"))]
fn sync_file_system(_dir: &Path, files: &[&Path]) -> std::io::Result<()> {
    files.iter().try_for_each(|f| File::open(f)?.sync_all())
}

/// Makes the renames done in `dir` so far durable.
pub fn sync_dir(dir: &Path) -> std::io::Result<()> {
    File::open(dir)?.sync_all()
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
    fn a_failed_write_leaves_what_was_there_and_no_temp() {
        let tmp = tempfile::tempdir().unwrap();
        // A folder in the way makes the final rename fail.
        let path = tmp.path().join("a.json");
        std::fs::create_dir(&path).unwrap();
        std::fs::write(path.join("kept"), b"old").unwrap();
        assert!(write_atomic(&path, b"new").is_err());
        assert_eq!(std::fs::read(path.join("kept")).unwrap(), b"old");
        let names: Vec<_> = std::fs::read_dir(tmp.path()).unwrap().collect();
        assert_eq!(names.len(), 1, "the temporary file is gone");
    }

    #[test]
    fn several_files_share_one_sync() {
        let tmp = tempfile::tempdir().unwrap();
        let paths: Vec<PathBuf> = (0..3)
            .map(|i| tmp.path().join(format!("{i}.json")))
            .collect();
        let temps: Vec<PathBuf> = paths
            .iter()
            .map(|p| write_temp(p, p.to_string_lossy().as_bytes()).unwrap())
            .collect();
        let refs: Vec<&Path> = temps.iter().map(PathBuf::as_path).collect();
        sync_files(tmp.path(), &refs).unwrap();
        for (temp, path) in temps.iter().zip(&paths) {
            assert!(temp
                .file_name()
                .unwrap()
                .to_string_lossy()
                .starts_with(TEMP_PREFIX));
            std::fs::rename(temp, path).unwrap();
            assert_eq!(
                std::fs::read(path).unwrap(),
                path.to_string_lossy().as_bytes()
            );
        }
    }
}
