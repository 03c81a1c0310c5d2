//! [`DirWatch`]: the file-system events of one directory, waited for on the caller's thread.
//!
//! On Linux the events come straight from inotify: the kernel wakes the thread that waits, with
//! no thread in between (a rename reaches the bridge in one wake-up, which is most of what a
//! scan's latency is made of on a busy machine). Elsewhere they come through `notify`, which
//! watches on a thread of its own and hands the events over a channel.

/// What happened to a file of the directory.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Change {
    /// The file appeared or changed; `complete` when it was renamed into the directory or closed
    /// after writing (it will not change any more).
    File { name: String, complete: bool },
    /// The file was deleted or renamed away.
    Removed { name: String },
    /// Events were lost (the kernel's queue overflowed) or the watch broke: list the directory.
    Lost,
}

pub use imp::DirWatch;

#[cfg(target_os = "linux")]
mod imp {
    use std::io;
    use std::os::fd::AsRawFd;
    use std::path::Path;
    use std::time::Duration;

    use inotify::{EventMask, Inotify, WatchMask};
    use mio::unix::SourceFd;
    use mio::{Events, Interest, Poll, Token};

    use super::Change;

    /// A directory watched through inotify, waited for with `epoll`.
    pub struct DirWatch {
        inotify: Inotify,
        poll: Poll,
        events: Events,
        buffer: Vec<u8>,
    }

    impl std::fmt::Debug for DirWatch {
        fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
            f.debug_struct("DirWatch").finish_non_exhaustive()
        }
    }

    impl DirWatch {
        /// Watches `dir` (not its subdirectories).
        pub fn new(dir: &Path) -> io::Result<Self> {
            let inotify = Inotify::init()?;
            inotify.watches().add(
                dir,
                WatchMask::MOVED_TO
                    | WatchMask::MOVED_FROM
                    | WatchMask::CLOSE_WRITE
                    | WatchMask::CREATE
                    | WatchMask::MODIFY
                    | WatchMask::DELETE
                    | WatchMask::DELETE_SELF
                    | WatchMask::MOVE_SELF
                    | WatchMask::ONLYDIR,
            )?;
            let poll = Poll::new()?;
            poll.registry().register(
                &mut SourceFd(&inotify.as_raw_fd()),
                Token(0),
                Interest::READABLE,
            )?;
            Ok(Self {
                inotify,
                poll,
                events: Events::with_capacity(4),
                // Room for many events per read (each is 16 bytes and its name).
                buffer: vec![0; 64 * 1024],
            })
        }

        /// Waits at most `timeout` for events and appends what they say to `out` (returns at
        /// once when some are queued already).
        pub fn wait(&mut self, timeout: Duration, out: &mut Vec<Change>) -> io::Result<()> {
            let before = out.len();
            self.drain(out)?;
            if out.len() > before || timeout.is_zero() {
                return Ok(());
            }
            match self.poll.poll(&mut self.events, Some(timeout)) {
                Ok(()) => {}
                Err(e) if e.kind() == io::ErrorKind::Interrupted => return Ok(()),
                Err(e) => return Err(e),
            }
            self.drain(out)
        }

        /// Reads every queued event (the descriptor is edge-triggered: until none is left).
        fn drain(&mut self, out: &mut Vec<Change>) -> io::Result<()> {
            loop {
                let events = match self.inotify.read_events(&mut self.buffer) {
                    Ok(events) => events,
                    Err(e) if e.kind() == io::ErrorKind::WouldBlock => return Ok(()),
                    Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                    Err(e) => return Err(e),
                };
                for event in events {
                    let mask = event.mask;
                    if mask.intersects(
                        EventMask::Q_OVERFLOW
                            | EventMask::DELETE_SELF
                            | EventMask::MOVE_SELF
                            | EventMask::IGNORED,
                    ) {
                        out.push(Change::Lost);
                        continue;
                    }
                    let Some(name) = event.name.and_then(|n| n.to_str()) else {
                        continue;
                    };
                    let name = name.to_string();
                    if mask.intersects(EventMask::DELETE | EventMask::MOVED_FROM) {
                        out.push(Change::Removed { name });
                    } else {
                        let complete =
                            mask.intersects(EventMask::MOVED_TO | EventMask::CLOSE_WRITE);
                        out.push(Change::File { name, complete });
                    }
                }
            }
        }
    }
}

#[cfg(not(target_os = "linux"))]
mod imp {
    use std::io;
    use std::path::{Path, PathBuf};
    use std::sync::mpsc::{Receiver, RecvTimeoutError, channel};
    use std::time::Duration;

    use notify::event::{AccessKind, AccessMode, ModifyKind, RenameMode};
    use notify::{EventKind, RecursiveMode, Watcher};

    use super::Change;

    /// A directory watched through `notify`.
    pub struct DirWatch {
        /// Kept alive: dropping it ends the watch.
        _watcher: notify::RecommendedWatcher,
        rx: Receiver<notify::Result<notify::Event>>,
    }

    impl std::fmt::Debug for DirWatch {
        fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
            f.debug_struct("DirWatch").finish_non_exhaustive()
        }
    }

    impl DirWatch {
        /// Watches `dir` (not its subdirectories).
        pub fn new(dir: &Path) -> io::Result<Self> {
            let (tx, rx) = channel();
            let mut watcher = notify::recommended_watcher(tx).map_err(io::Error::other)?;
            watcher
                .watch(dir, RecursiveMode::NonRecursive)
                .map_err(io::Error::other)?;
            Ok(Self {
                _watcher: watcher,
                rx,
            })
        }

        /// Waits at most `timeout` for events and appends what they say to `out`.
        pub fn wait(&mut self, timeout: Duration, out: &mut Vec<Change>) -> io::Result<()> {
            let first = match self.rx.recv_timeout(timeout) {
                Ok(event) => event,
                Err(RecvTimeoutError::Timeout) => return Ok(()),
                Err(RecvTimeoutError::Disconnected) => {
                    std::thread::sleep(timeout);
                    out.push(Change::Lost);
                    return Ok(());
                }
            };
            for event in std::iter::once(first).chain(self.rx.try_iter()) {
                let Ok(event) = event else {
                    // An overflowed event queue and the like.
                    out.push(Change::Lost);
                    continue;
                };
                let complete = matches!(
                    event.kind,
                    EventKind::Modify(ModifyKind::Name(RenameMode::To | RenameMode::Both))
                        | EventKind::Access(AccessKind::Close(AccessMode::Write))
                );
                let removed = matches!(
                    event.kind,
                    EventKind::Remove(_) | EventKind::Modify(ModifyKind::Name(RenameMode::From))
                );
                // A rename with both ends names the old path first and the new one last.
                let paths: &[PathBuf] = match event.kind {
                    EventKind::Modify(ModifyKind::Name(RenameMode::Both)) => {
                        event.paths.get(1..).unwrap_or_default()
                    }
                    _ => &event.paths,
                };
                for path in paths {
                    let Some(name) = path.file_name().and_then(|n| n.to_str()) else {
                        continue;
                    };
                    let name = name.to_string();
                    out.push(if removed {
                        Change::Removed { name }
                    } else {
                        Change::File { name, complete }
                    });
                }
            }
            Ok(())
        }
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use std::time::Duration;

    use super::*;

    /// Waits (up to a generous bound) until the events say `done`.
    fn until(watch: &mut DirWatch, done: impl Fn(&[Change]) -> bool) -> Vec<Change> {
        let mut seen = Vec::new();
        let deadline = std::time::Instant::now() + Duration::from_secs(30);
        while !done(&seen) {
            assert!(std::time::Instant::now() < deadline, "{seen:?}");
            watch.wait(Duration::from_millis(100), &mut seen).unwrap();
        }
        seen
    }

    #[test]
    fn renames_closes_and_removals_are_reported_by_name() {
        let dir = tempfile::tempdir().unwrap();
        let mut watch = DirWatch::new(dir.path()).unwrap();
        let mut none = Vec::new();
        watch.wait(Duration::ZERO, &mut none).unwrap();
        assert!(none.is_empty(), "{none:?}");

        std::fs::write(dir.path().join(".a.csv.tmp"), "x").unwrap();
        std::fs::rename(dir.path().join(".a.csv.tmp"), dir.path().join("a.csv")).unwrap();
        let seen = until(&mut watch, |s| {
            s.iter()
                .any(|c| matches!(c, Change::File { name, complete: true } if name == "a.csv"))
        });
        assert!(
            seen.iter()
                .any(|c| matches!(c, Change::File { name, .. } if name == ".a.csv.tmp")),
            "{seen:?}"
        );

        std::fs::write(dir.path().join("b.csv"), "y").unwrap();
        until(&mut watch, |s| {
            s.iter()
                .any(|c| matches!(c, Change::File { name, complete: true } if name == "b.csv"))
        });

        std::fs::remove_file(dir.path().join("a.csv")).unwrap();
        until(&mut watch, |s| {
            s.contains(&Change::Removed {
                name: "a.csv".to_string(),
            })
        });
    }
}
