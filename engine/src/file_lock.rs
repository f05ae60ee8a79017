//! The exclusive writer locks of the data directory and of a journal directory: a `flock` on
//! a `LOCK` file, held as long as the returned descriptor is open (or the process lives).

use std::fs::{File, OpenOptions};
use std::os::fd::AsRawFd;
use std::path::Path;
use std::time::{Duration, Instant};

/// How long [`lock_exclusive`] retries a held lock before reporting it held.
const GRACE: Duration = Duration::from_millis(250);

/// Opens (creating) `path` and takes an exclusive `flock` on it. `Ok(None)` when another
/// holder keeps it for longer than the grace.
///
/// A lock that was just released can still look held: a thread of this process that is
/// spawning a child holds a copy of every descriptor between fork and exec, and the lock lives
/// until the exec closes that copy. So a held lock is retried briefly before it is reported as
/// another writer's.
pub(crate) fn lock_exclusive(path: &Path) -> std::io::Result<Option<File>> {
    let file = OpenOptions::new()
        .read(true)
        .write(true)
        .create(true)
        .truncate(false)
        .open(path)?;
    let deadline = Instant::now() + GRACE;
    let mut pause = Duration::from_millis(1);
    loop {
        // SAFETY: a plain syscall on a descriptor this function owns.
        let rc = unsafe { libc::flock(file.as_raw_fd(), libc::LOCK_EX | libc::LOCK_NB) };
        if rc == 0 {
            return Ok(Some(file));
        }
        let err = std::io::Error::last_os_error();
        if err.kind() != std::io::ErrorKind::WouldBlock {
            return Err(err);
        }
        if Instant::now() >= deadline {
            return Ok(None);
        }
        std::thread::sleep(pause);
        pause = (pause * 2).min(Duration::from_millis(20));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_held_lock_is_refused_and_a_released_one_is_taken() {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("LOCK");
        let held = lock_exclusive(&path).expect("lock").expect("free");
        // flock conflicts between two open file descriptions, even in one process.
        assert!(lock_exclusive(&path).expect("lock").is_none());
        // Released within the grace (as when a spawning child's copy is closed by its exec):
        // waited for, not refused.
        let release = std::thread::spawn(move || {
            std::thread::sleep(Duration::from_millis(50));
            drop(held);
        });
        let again = lock_exclusive(&path).expect("lock");
        release.join().expect("release");
        assert!(again.is_some());
    }
}
