//! Where a workflow came from: its path, a hash of its text, and the git
//! commit it was run at, so a result can be traced to the reviewed file.

use std::path::Path;
use std::process::Command;

use super::record::WorkflowRecord;
use crate::hash::sha256_hex;

/// Describes the workflow at `path` whose text is `source`, all but its
/// git state, which [`add_git_state`] fills in.
pub fn describe(name: &str, path: &Path, source: &str) -> WorkflowRecord {
    WorkflowRecord {
        name: name.to_owned(),
        path: path.display().to_string(),
        sha256: sha256_hex(source.as_bytes()),
        git_commit: None,
        git_dirty: None,
    }
}

/// Records the commit and the file's state that [`git_state`] found.
pub fn add_git_state(record: &mut WorkflowRecord, state: Option<(String, bool)>) {
    if let Some((commit, dirty)) = state {
        record.git_commit = Some(commit);
        record.git_dirty = Some(dirty);
    }
}

/// The HEAD commit of the work tree holding `path`, and whether the file
/// differs from it; `None` outside a work tree or without git. It starts
/// two git processes, tens of milliseconds: a run asks for it beside its
/// first steps rather than before them.
pub fn git_state(path: &Path) -> Option<(String, bool)> {
    let dir = match path.parent() {
        Some(p) if !p.as_os_str().is_empty() => p,
        _ => Path::new("."),
    };
    let file = path.file_name()?;
    let git = |args: &[&std::ffi::OsStr]| {
        let out = Command::new("git")
            .arg("-C")
            .arg(dir)
            .args(args)
            .output()
            .ok()?;
        out.status
            .success()
            .then(|| String::from_utf8_lossy(&out.stdout).trim().to_owned())
    };
    let commit = git(&["rev-parse".as_ref(), "HEAD".as_ref()])?;
    let status = git(&[
        "status".as_ref(),
        "--porcelain".as_ref(),
        "--".as_ref(),
        file,
    ])?;
    Some((commit, !status.is_empty()))
}
