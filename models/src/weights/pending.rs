//! Temporary outputs still being written, so that an interrupted run removes them: every
//! atomic write registers its temporary file (or folder) here while it fills it, and the CLI's
//! SIGINT/SIGTERM handler calls [`remove_all`] before exiting. An output is therefore either
//! complete under its own name or not there at all, with no temporary file left beside it.
//!
//! The writer keeps running on its own thread while the handler removes its files, and could
//! create new ones under a folder being removed: each file operation of a pending output runs
//! through [`step`], and [`remove_all`] first closes that gate for good, so that no operation
//! starts or is still under way while it removes.

use std::io::Write;
use std::path::{Path, PathBuf};
use std::sync::{Mutex, RwLock};

static PENDING: Mutex<Vec<PathBuf>> = Mutex::new(Vec::new());

/// Open (readers: file operations) until [`remove_all`] takes it for writing and keeps it.
static GATE: RwLock<()> = RwLock::new(());

/// Runs one file operation of a pending output (create, write a chunk, rename); once an
/// interrupt is being handled it blocks until the process exits.
pub fn step<T>(op: impl FnOnce() -> T) -> T {
    let _open = GATE.read().unwrap_or_else(|e| e.into_inner());
    op()
}

/// A writer whose every call is one [`step`].
pub struct Gated<W: Write>(pub W);

impl<W: Write> Write for Gated<W> {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        step(|| self.0.write(buf))
    }
    fn flush(&mut self) -> std::io::Result<()> {
        step(|| self.0.flush())
    }
}

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
    // Closed for good: the process exits after this.
    std::mem::forget(GATE.write().unwrap_or_else(|e| e.into_inner()));
    remove_listed();
}

/// Removes every registered path (the gate aside).
fn remove_listed() {
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
        assert_eq!(step(|| 7), 7);
        remove_listed();
        assert!(!a.exists() && !b.exists());
        assert!(done.exists(), "an unregistered path was removed");
    }
}
