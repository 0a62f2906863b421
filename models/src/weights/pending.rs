//! Temporary outputs still being written, so that an interrupted run removes them: every
//! atomic write registers its temporary file (or folder) here while it fills it, and the CLI's
//! SIGINT/SIGTERM handler calls [`remove_all`] before exiting. An output is therefore either
//! complete under its own name or not there at all, with no temporary file left beside it.

use std::path::{Path, PathBuf};
use std::sync::Mutex;

static PENDING: Mutex<Vec<PathBuf>> = Mutex::new(Vec::new());

/// A temporary output registered while it is written; dropping it unregisters it.
#[must_use = "the path is unregistered when this is dropped"]
pub struct Pending(PathBuf);

/// Registers `path` (a temporary file or folder) until the returned guard is dropped.
pub fn track(path: &Path) -> Pending {
    let mut list = PENDING.lock().unwrap_or_else(|e| e.into_inner());
    list.push(path.to_path_buf());
    Pending(path.to_path_buf())
}

impl Drop for Pending {
    fn drop(&mut self) {
        let mut list = PENDING.lock().unwrap_or_else(|e| e.into_inner());
        if let Some(i) = list.iter().rposition(|p| *p == self.0) {
            list.swap_remove(i);
        }
    }
}

/// Removes every registered temporary output (for a signal handler, just before the process
/// exits). Paths already renamed into place are gone from under their temporary names, so a
/// completed output is never touched.
pub fn remove_all() {
    let list = PENDING.lock().unwrap_or_else(|e| e.into_inner());
    for p in list.iter() {
        if p.is_dir() {
            let _ = std::fs::remove_dir_all(p);
        } else {
            let _ = std::fs::remove_file(p);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn registered_paths_are_removed_until_their_guard_is_dropped() {
        let dir = tempfile::tempdir().unwrap();
        let (a, b) = (dir.path().join("a.tmp"), dir.path().join("b.tmp"));
        std::fs::write(&a, b"x").unwrap();
        std::fs::create_dir(&b).unwrap();
        std::fs::write(b.join("inner"), b"y").unwrap();
        let done = dir.path().join("done.tmp");
        std::fs::write(&done, b"z").unwrap();
        drop(track(&done));
        let (_ga, _gb) = (track(&a), track(&b));
        remove_all();
        assert!(!a.exists() && !b.exists());
        assert!(done.exists(), "an unregistered path was removed");
    }
}
