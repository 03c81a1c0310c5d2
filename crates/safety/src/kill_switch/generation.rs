//! [`Generation`]: the kill switch's change counter, `<data_dir>/killswitch/generation`.
//!
//! Eight bytes (a little-endian `u64`) mapped `MAP_SHARED` by every process that watches or
//! changes a kill switch of the data dir: the mapping of one file is the same physical page in
//! every process on the host, so an atomic increment in one is seen by the very next atomic load
//! in any other. [`super::KillSwitch::engage`] and `release` write the state file durably, THEN
//! increment the counter, then return; a watcher loads the counter (one atomic load, no system
//! call) and re-reads the state files only when it moved. The counter needs no durability: it
//! only says "something changed since you last looked"; after a restart every watcher reads the
//! state files on its first check anyway.
//!
//! Each process maps each counter file once and keeps the mapping for its lifetime (one page per
//! file; see [`Generation::counter`]), so that the engine can read the counter inline on every
//! bar without a call through its gate.
//!
//! The file is created (zero) by the first process that needs it and never deleted, truncated or
//! rewritten by tradeloom. If someone deletes it (or the whole folder) while processes run, a
//! process still maps the unlinked old page: [`Generation::is_current`] (one `stat`) tells, and
//! watchers call it every [`super::REVALIDATE_EVERY`] checks and on every change they see.
//! Truncating it below 8 bytes while a process has it mapped would fault that process (SIGBUS),
//! as with any shared mapping: don't.

use std::fs::{File, OpenOptions};
use std::io;
use std::path::{Path, PathBuf};
use std::sync::Mutex;
use std::sync::atomic::{AtomicU64, Ordering};

/// The counter's file name inside the kill switch folder.
pub const FILE_NAME: &str = "generation";

/// Bytes of the file and of the mapping.
const LEN: usize = std::mem::size_of::<u64>();

/// Every counter file this process has mapped, by (device, inode), with its mapping. A
/// mapping is never unmapped, so it also keeps its inode from being reused for another file
/// while the process lives: an identity found here is the very file it was mapped from.
static MAPPED: Mutex<Vec<((u64, u64), &'static AtomicU64)>> = Mutex::new(Vec::new());

/// One process's shared mapping of `<killswitch>/generation`.
pub struct Generation {
    counter: &'static AtomicU64,
    path: PathBuf,
    /// The mapped file's (device, inode): what [`Generation::is_current`] compares.
    identity: (u64, u64),
}

impl std::fmt::Debug for Generation {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Generation")
            .field("path", &self.path)
            .field("value", &self.load())
            .finish()
    }
}

impl Generation {
    /// Maps `<dir>/generation`, creating it (zero) if missing.
    pub fn open(dir: &Path) -> io::Result<Self> {
        let path = dir.join(FILE_NAME);
        let file = OpenOptions::new()
            .read(true)
            .write(true)
            .create(true)
            .truncate(false)
            .open(&path)?;
        let meta = file.metadata()?;
        if meta.len() < LEN as u64 {
            // Two processes creating it at once both extend it to 8 bytes; extending a file to
            // the length it already has changes nothing, so a value written in between stays.
            file.set_len(LEN as u64)?;
        }
        let identity = identity(&meta);
        let mut mapped = MAPPED.lock().unwrap_or_else(|e| e.into_inner());
        let counter = match mapped.iter().find(|(id, _)| *id == identity) {
            Some((_, counter)) => *counter,
            None => {
                let counter = map(&file)?;
                mapped.push((identity, counter));
                counter
            }
        };
        Ok(Self {
            counter,
            path,
            identity,
        })
    }

    /// The shared counter itself, valid for the life of the process (the mapping is never
    /// unmapped): what the engine loads on every bar to know whether to ask its gate.
    pub fn counter(&self) -> &'static AtomicU64 {
        self.counter
    }

    /// The counter now. Acquire: whatever the changer wrote before its increment (the state
    /// file) is visible to what the caller does after this load.
    #[inline]
    pub fn load(&self) -> u64 {
        self.counter.load(Ordering::Acquire)
    }

    /// Increments the counter (after a change is durable, before reporting it done); returns the
    /// new value.
    pub fn bump(&self) -> u64 {
        self.counter.fetch_add(1, Ordering::SeqCst).wrapping_add(1)
    }

    /// Whether `<dir>/generation` is still the file this maps (not deleted or replaced since).
    /// One `stat`.
    pub fn is_current(&self) -> bool {
        std::fs::metadata(&self.path).is_ok_and(|m| identity(&m) == self.identity)
    }
}

#[cfg(unix)]
fn identity(meta: &std::fs::Metadata) -> (u64, u64) {
    use std::os::unix::fs::MetadataExt;
    (meta.dev(), meta.ino())
}

/// Maps the first 8 bytes of `file` shared and read-write, for the life of the process. The file
/// descriptor may be closed afterwards: the mapping keeps the file.
#[allow(unsafe_code)] // mmap of a file we opened; the result is checked before use
fn map(file: &File) -> io::Result<&'static AtomicU64> {
    use std::os::fd::AsRawFd;
    // SAFETY: a fresh mapping chosen by the kernel (no fixed address), of a file at least LEN
    // bytes long (extended above); the result is checked against MAP_FAILED.
    let ptr = unsafe {
        libc::mmap(
            std::ptr::null_mut(),
            LEN,
            libc::PROT_READ | libc::PROT_WRITE,
            libc::MAP_SHARED,
            file.as_raw_fd(),
            0,
        )
    };
    if ptr == libc::MAP_FAILED {
        return Err(io::Error::last_os_error());
    }
    if ptr.is_null() {
        return Err(io::Error::other("mmap returned null"));
    }
    // SAFETY: a live, page-aligned (so aligned for AtomicU64), read-write shared mapping of at
    // least 8 bytes that is never unmapped; every access to it goes through the atomic.
    Ok(unsafe { &*ptr.cast::<AtomicU64>() })
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)] // tests fail loudly on an unexpected error

    use super::*;

    #[test]
    fn two_mappings_of_one_file_share_the_counter() {
        let tmp = tempfile::tempdir().unwrap();
        let a = Generation::open(tmp.path()).unwrap();
        let b = Generation::open(tmp.path()).unwrap();
        assert!(
            std::ptr::eq(a.counter(), b.counter()),
            "one mapping per file"
        );
        assert_eq!((a.load(), b.load()), (0, 0));
        assert_eq!(a.bump(), 1);
        assert_eq!(b.load(), 1, "seen through the other mapping at once");
        assert_eq!(b.bump(), 2);
        assert_eq!(a.load(), 2);
        drop(a);
        assert_eq!(Generation::open(tmp.path()).unwrap().load(), 2);
        assert_eq!(
            std::fs::read(tmp.path().join(FILE_NAME)).unwrap(),
            2u64.to_le_bytes(),
            "the file holds the counter"
        );
    }

    #[test]
    fn a_deleted_or_replaced_file_is_no_longer_current() {
        let tmp = tempfile::tempdir().unwrap();
        let old = Generation::open(tmp.path()).unwrap();
        assert!(old.is_current());
        std::fs::remove_file(tmp.path().join(FILE_NAME)).unwrap();
        assert!(!old.is_current());
        let new = Generation::open(tmp.path()).unwrap();
        assert!(new.is_current() && !old.is_current());
        assert!(
            !std::ptr::eq(new.counter(), old.counter()),
            "the re-created file is mapped afresh"
        );
        new.bump();
        assert_eq!(old.load(), 0, "the unlinked page no longer moves");
    }
}
