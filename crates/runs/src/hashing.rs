//! sha256 of files, and the artifact writer: rows are formatted into a buffer on the engine's
//! thread, and each full buffer is hashed and written by one writer thread per run (so hashing
//! and the `write` system calls overlap the engine instead of stalling it).
//!
//! Durability is as it was: [`ArtifactWriter::finish`] returns once the file's data is on disk
//! (`fdatasync`). While a run writes, the writer thread also asks the kernel to start writing
//! each chunk back (`sync_file_range(SYNC_FILE_RANGE_WRITE)`, which does not wait), so that the
//! final `fdatasync` has little left to wait for.

use std::fs::File;
use std::io::{self, Read, Write};
use std::path::Path;
use std::sync::mpsc::{Receiver, SyncSender, sync_channel};
use std::sync::{Arc, Mutex, PoisonError};

use sha2::{Digest, Sha256};

/// Bytes buffered per artifact before they are handed to the writer thread.
const CHUNK: usize = 256 * 1024;
/// Chunks in flight to the writer thread (all artifacts together) before a writer waits.
const IN_FLIGHT: usize = 16;

/// A writer that hashes every byte it passes on.
pub struct HashingWriter<W: Write> {
    inner: W,
    hasher: Sha256,
    bytes: u64,
}

impl<W: Write> HashingWriter<W> {
    pub fn new(inner: W) -> Self {
        Self {
            inner,
            hasher: Sha256::new(),
            bytes: 0,
        }
    }

    /// The hex digest and byte count so far, and the inner writer.
    pub fn finish(self) -> (String, u64, W) {
        (hex::encode(self.hasher.finalize()), self.bytes, self.inner)
    }
}

impl<W: Write> Write for HashingWriter<W> {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        let n = self.inner.write(buf)?;
        self.hasher.update(&buf[..n]);
        self.bytes += n as u64;
        Ok(n)
    }

    fn flush(&mut self) -> io::Result<()> {
        self.inner.flush()
    }
}

/// What a writer asks of the writer thread.
enum Job {
    /// Hash and append `bytes` to file `file`.
    Write { file: usize, bytes: Vec<u8> },
    /// Answer file `file`'s digest and size (or its error) and sync it on a thread of its own.
    Finish {
        file: usize,
        reply: SyncSender<io::Result<Finishing>>,
    },
}

/// An artifact whose bytes are all written and hashed, on its way to disk: its `fdatasync`
/// runs on a thread of its own, so that the artifacts of a run are synced at the same time
/// (the file system commits them together) while the caller goes on.
pub struct Finishing {
    pub sha256: String,
    pub bytes: u64,
    sync: Option<std::thread::JoinHandle<io::Result<()>>>,
}

impl Finishing {
    /// Waits until the file's data is on disk; its sha256 and size, or the sync's error.
    pub fn wait(self) -> io::Result<(String, u64)> {
        if let Some(sync) = self.sync {
            sync.join()
                .map_err(|_| io::Error::other("the thread syncing an artifact panicked"))??;
        }
        Ok((self.sha256, self.bytes))
    }
}

/// One file of the writer thread.
struct Slot {
    file: File,
    hasher: Sha256,
    bytes: u64,
    /// The first error met (later chunks are dropped).
    error: Option<(io::ErrorKind, String)>,
    /// After a failed write, cut the file back to its last `\n` (the journal).
    whole_lines: bool,
}

/// The state writers and the writer thread share.
#[derive(Default)]
struct Shared {
    /// New files: the writer thread moves them into its own table as jobs name them.
    files: Mutex<Vec<Option<Slot>>>,
    /// Each file's first error, for writers to notice before the end.
    errors: Mutex<Vec<Option<(io::ErrorKind, String)>>>,
    /// Spent buffers, for reuse.
    pool: Mutex<Vec<Vec<u8>>>,
}

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    // A panic elsewhere while holding the lock leaves plain data behind; keep using it.
    m.lock().unwrap_or_else(PoisonError::into_inner)
}

/// Runs before any of a pipe's writers hands bytes to the writer thread (see
/// [`ArtifactPipe::with_barrier`]).
pub type Barrier = Arc<dyn Fn() -> io::Result<()> + Send + Sync>;

/// The writer thread of a run's artifacts; [`ArtifactPipe::create`] opens files on it.
#[derive(Clone)]
pub struct ArtifactPipe {
    tx: SyncSender<Job>,
    shared: Arc<Shared>,
    barrier: Option<Barrier>,
}

impl ArtifactPipe {
    /// Starts a writer thread. It ends when every [`ArtifactPipe`] and [`ArtifactWriter`] of it
    /// is dropped.
    pub fn spawn() -> io::Result<Self> {
        let (tx, rx) = sync_channel(IN_FLIGHT);
        let shared = Arc::new(Shared::default());
        let thread_shared = Arc::clone(&shared);
        std::thread::Builder::new()
            .name("artifacts".to_string())
            .spawn(move || writer_thread(&rx, &thread_shared))?;
        Ok(Self {
            tx,
            shared,
            barrier: None,
        })
    }

    /// Runs `barrier` before every hand-over of any writer opened on this pipe afterwards (a
    /// paper run writes its buffered `state/inputs.jsonl` records there, so the outputs of an
    /// input never reach the files before the input does). A hand-over fails with its error.
    pub fn with_barrier(mut self, barrier: Barrier) -> Self {
        self.barrier = Some(barrier);
        self
    }

    /// Creates (or truncates) an artifact file written through this pipe. It is opened for
    /// reading too, so that a failed journal write can be cut back to its last complete line.
    pub fn create(&self, path: &Path) -> io::Result<ArtifactWriter> {
        self.open(path, false)
    }

    /// [`ArtifactPipe::create`] for a file of lines (the journal): after a failed write the
    /// file is cut back to its last complete line and later writes fail.
    pub fn create_lines(&self, path: &Path) -> io::Result<ArtifactWriter> {
        self.open(path, true)
    }

    /// Opens an existing file of lines to append to (a resumed paper run's journal): it is cut
    /// to its first `keep` bytes, which are hashed, and later writes go after them.
    pub fn append_lines(&self, path: &Path, keep: u64) -> io::Result<ArtifactWriter> {
        let mut file = File::options().read(true).write(true).open(path)?;
        file.set_len(keep)?;
        let mut hasher = Sha256::new();
        let mut buf = vec![0u8; 1 << 16];
        let mut read = 0u64;
        loop {
            let n = file.read(&mut buf)?;
            if n == 0 {
                break;
            }
            hasher.update(&buf[..n]);
            read += n as u64;
        }
        if read != keep {
            return Err(io::Error::other(format!(
                "read {read} bytes of the {keep} to keep"
            )));
        }
        Ok(self.add(Slot {
            file,
            hasher,
            bytes: keep,
            error: None,
            whole_lines: true,
        }))
    }

    fn open(&self, path: &Path, whole_lines: bool) -> io::Result<ArtifactWriter> {
        let file = File::options()
            .read(true)
            .write(true)
            .create(true)
            .truncate(true)
            .open(path)?;
        Ok(self.add(Slot {
            file,
            hasher: Sha256::new(),
            bytes: 0,
            error: None,
            whole_lines,
        }))
    }

    fn add(&self, slot: Slot) -> ArtifactWriter {
        let index = {
            let mut files = lock(&self.shared.files);
            files.push(Some(slot));
            lock(&self.shared.errors).push(None);
            files.len() - 1
        };
        ArtifactWriter {
            buf: Vec::with_capacity(CHUNK + 4096),
            file: index,
            pipe: self.clone(),
        }
    }
}

fn writer_thread(rx: &Receiver<Job>, shared: &Shared) {
    let mut slots: Vec<Option<Slot>> = Vec::new();
    let take = |slots: &mut Vec<Option<Slot>>, file: usize| {
        if slots.len() <= file {
            slots.resize_with(file + 1, || None);
        }
        if slots[file].is_none() {
            slots[file] = lock(&shared.files).get_mut(file).and_then(Option::take);
        }
    };
    for job in rx {
        match job {
            Job::Write { file, bytes } => {
                take(&mut slots, file);
                if let Some(slot) = slots[file].as_mut()
                    && slot.error.is_none()
                    && let Err(e) = write_chunk(slot, &bytes)
                {
                    let error = (e.kind(), e.to_string());
                    lock(&shared.errors)[file] = Some(error.clone());
                    slot.error = Some(error);
                }
                let mut bytes = bytes;
                bytes.clear();
                lock(&shared.pool).push(bytes);
            }
            Job::Finish { file, reply } => {
                take(&mut slots, file);
                let result = match slots[file].take() {
                    Some(slot) => finish_slot(slot),
                    None => Err(io::Error::other("artifact finished twice")),
                };
                let _ = reply.send(result);
            }
        }
    }
}

fn write_chunk(slot: &mut Slot, bytes: &[u8]) -> io::Result<()> {
    let offset = slot.bytes;
    if let Err(e) = slot.file.write_all(bytes) {
        if slot.whole_lines {
            let message = match crate::journal::cut_to_last_line(&mut slot.file) {
                Ok(_) => e.to_string(),
                Err(cut) => format!("{e} (and cutting the partial last line failed: {cut})"),
            };
            return Err(io::Error::new(e.kind(), message));
        }
        return Err(e);
    }
    slot.hasher.update(bytes);
    slot.bytes += bytes.len() as u64;
    start_writeback(&slot.file, offset, bytes.len());
    Ok(())
}

/// Asks the kernel to start writing a range back to disk without waiting (Linux); durability
/// still comes from the `fdatasync` at the end.
#[cfg(target_os = "linux")]
#[allow(unsafe_code)] // sync_file_range: an fd we own and two integers; nothing kept
fn start_writeback(file: &File, offset: u64, len: usize) {
    use std::os::fd::AsRawFd;
    let (Ok(offset), Ok(len)) = (i64::try_from(offset), i64::try_from(len)) else {
        return;
    };
    // SAFETY: the fd is open for the duration of the call; the call only schedules I/O. Its
    // result is advisory (an error here shows up again at the final fdatasync).
    unsafe {
        libc::sync_file_range(file.as_raw_fd(), offset, len, libc::SYNC_FILE_RANGE_WRITE);
    }
}

#[cfg(not(target_os = "linux"))]
fn start_writeback(_file: &File, _offset: u64, _len: usize) {}

fn finish_slot(slot: Slot) -> io::Result<Finishing> {
    if let Some((kind, message)) = slot.error {
        return Err(io::Error::new(kind, message));
    }
    let sha256 = hex::encode(slot.hasher.finalize());
    let file = Arc::new(slot.file);
    let on_thread = Arc::clone(&file);
    let sync = match std::thread::Builder::new()
        .name("artifact-sync".to_string())
        .spawn(move || on_thread.sync_data())
    {
        Ok(handle) => Some(handle),
        // No thread to be had: sync here.
        Err(_) => {
            file.sync_data()?;
            None
        }
    };
    Ok(Finishing {
        sha256,
        bytes: slot.bytes,
        sync,
    })
}

/// A buffered artifact file whose chunks are hashed and written on the run's writer thread.
/// Format rows straight into [`ArtifactWriter::buffer`] and call [`ArtifactWriter::commit`]
/// after each whole row (a chunk never ends inside a row), or use it as an [`io::Write`].
pub struct ArtifactWriter {
    buf: Vec<u8>,
    file: usize,
    pipe: ArtifactPipe,
}

impl ArtifactWriter {
    /// The buffer to append whole rows to; [`ArtifactWriter::commit`] after each.
    #[inline]
    pub fn buffer(&mut self) -> &mut Vec<u8> {
        &mut self.buf
    }

    /// Hands the buffer to the writer thread when it is full. Returns the file's first write
    /// error once the writer thread has met one.
    #[inline]
    pub fn commit(&mut self) -> io::Result<()> {
        if self.buf.len() >= CHUNK {
            self.ship()?;
        }
        Ok(())
    }

    /// Hands whatever is buffered to the writer thread now (a paper run's folder grows while
    /// it runs). Returns the file's first write error once the writer thread has met one.
    pub fn hand_over(&mut self) -> io::Result<()> {
        if self.buf.is_empty() {
            return match self.failed() {
                Some(e) => Err(e),
                None => Ok(()),
            };
        }
        self.ship()
    }

    /// Drops what is buffered and not yet handed over (after a row could not be completed).
    pub fn truncate(&mut self, len: usize) {
        self.buf.truncate(len);
    }

    fn failed(&self) -> Option<io::Error> {
        lock(&self.pipe.shared.errors)
            .get(self.file)
            .and_then(Option::as_ref)
            .map(|(kind, message)| io::Error::new(*kind, message.clone()))
    }

    #[cold]
    fn ship(&mut self) -> io::Result<()> {
        if let Some(e) = self.failed() {
            self.buf.clear();
            return Err(e);
        }
        if let Some(barrier) = &self.pipe.barrier {
            barrier()?;
        }
        let next = lock(&self.pipe.shared.pool)
            .pop()
            .unwrap_or_else(|| Vec::with_capacity(CHUNK + 4096));
        let bytes = std::mem::replace(&mut self.buf, next);
        self.pipe
            .tx
            .send(Job::Write {
                file: self.file,
                bytes,
            })
            .map_err(|_| io::Error::other("the artifact writer thread has stopped"))
    }

    /// Hands over what is buffered, waits until the file is hashed and on disk, and returns
    /// its sha256 and size (or the first error met writing it).
    pub fn finish(self) -> io::Result<(String, u64)> {
        self.start_finish()?.wait()
    }

    /// Hands over what is buffered and waits until the file is written and hashed; its sync
    /// to disk is under way when this returns ([`Finishing::wait`] waits for it).
    pub fn start_finish(mut self) -> io::Result<Finishing> {
        if !self.buf.is_empty() {
            self.ship()?;
        }
        let (reply, answer) = sync_channel(1);
        self.pipe
            .tx
            .send(Job::Finish {
                file: self.file,
                reply,
            })
            .map_err(|_| io::Error::other("the artifact writer thread has stopped"))?;
        answer
            .recv()
            .map_err(|_| io::Error::other("the artifact writer thread has stopped"))?
    }
}

impl Write for ArtifactWriter {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        self.buf.extend_from_slice(buf);
        self.commit()?;
        Ok(buf.len())
    }

    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }
}

/// Creates an artifact on a writer thread of its own (one file; a run shares one pipe among
/// its artifacts, see [`ArtifactPipe`]).
pub fn create_artifact(path: &Path) -> io::Result<ArtifactWriter> {
    ArtifactPipe::spawn()?.create(path)
}

/// Hands over the rest of an artifact, waits for it to be on disk and returns its sha256 and
/// size.
pub fn finish_artifact(writer: ArtifactWriter) -> io::Result<(String, u64)> {
    writer.finish()
}

/// sha256 and size of a file on disk.
pub fn sha256_file(path: &Path) -> io::Result<(String, u64)> {
    let mut file = File::open(path)?;
    let mut hasher = Sha256::new();
    let mut buf = vec![0u8; 1 << 20];
    let mut bytes = 0u64;
    loop {
        let n = file.read(&mut buf)?;
        if n == 0 {
            break;
        }
        hasher.update(&buf[..n]);
        bytes += n as u64;
    }
    Ok((hex::encode(hasher.finalize()), bytes))
}

/// sha256 of bytes in memory.
pub fn sha256_bytes(bytes: &[u8]) -> String {
    hex::encode(Sha256::digest(bytes))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn writer_and_file_hashes_agree() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("a.txt");
        let mut w = create_artifact(&path).unwrap();
        w.write_all(b"hello\n").unwrap();
        let (digest, bytes) = finish_artifact(w).unwrap();
        assert_eq!(bytes, 6);
        assert_eq!(sha256_file(&path).unwrap(), (digest.clone(), 6));
        assert_eq!(digest, sha256_bytes(b"hello\n"));
    }

    #[test]
    fn many_chunks_on_one_pipe_keep_each_file_in_order() {
        let dir = tempfile::tempdir().unwrap();
        let pipe = ArtifactPipe::spawn().unwrap();
        let mut a = pipe.create(&dir.path().join("a")).unwrap();
        let mut b = pipe.create_lines(&dir.path().join("b")).unwrap();
        let (mut want_a, mut want_b) = (Vec::new(), Vec::new());
        for i in 0..200_000u32 {
            let row = format!("{i},{}\n", i * 7);
            a.buffer().extend_from_slice(row.as_bytes());
            a.commit().unwrap();
            want_a.extend_from_slice(row.as_bytes());
            if i % 3 == 0 {
                b.write_all(row.as_bytes()).unwrap();
                want_b.extend_from_slice(row.as_bytes());
            }
        }
        drop(pipe);
        let (ha, na) = a.finish().unwrap();
        let (hb, nb) = b.finish().unwrap();
        assert!(want_a.len() > 4 * CHUNK, "several chunks");
        assert_eq!(std::fs::read(dir.path().join("a")).unwrap(), want_a);
        assert_eq!(std::fs::read(dir.path().join("b")).unwrap(), want_b);
        assert_eq!((ha, na), (sha256_bytes(&want_a), want_a.len() as u64));
        assert_eq!((hb, nb), (sha256_bytes(&want_b), want_b.len() as u64));
    }

    #[test]
    fn the_barrier_runs_before_every_hand_over_and_its_error_fails_it() {
        use std::sync::atomic::{AtomicUsize, Ordering};
        let dir = tempfile::tempdir().unwrap();
        let calls = Arc::new(AtomicUsize::new(0));
        let failing = Arc::new(std::sync::atomic::AtomicBool::new(false));
        let barrier: Barrier = {
            let (calls, failing) = (Arc::clone(&calls), Arc::clone(&failing));
            Arc::new(move || {
                calls.fetch_add(1, Ordering::SeqCst);
                match failing.load(Ordering::SeqCst) {
                    true => Err(io::Error::other("inputs not written")),
                    false => Ok(()),
                }
            })
        };
        let pipe = ArtifactPipe::spawn().unwrap().with_barrier(barrier);
        let mut w = pipe.create(&dir.path().join("a")).unwrap();
        w.buffer().extend_from_slice(b"row\n");
        w.commit().unwrap();
        assert_eq!(calls.load(Ordering::SeqCst), 0, "nothing handed over yet");
        w.hand_over().unwrap();
        assert_eq!(calls.load(Ordering::SeqCst), 1);
        w.buffer().extend_from_slice(&vec![b'x'; CHUNK]);
        w.commit().unwrap();
        assert_eq!(
            calls.load(Ordering::SeqCst),
            2,
            "a full chunk is handed over"
        );
        failing.store(true, Ordering::SeqCst);
        w.buffer().extend_from_slice(b"more\n");
        let e = w.hand_over().unwrap_err();
        assert!(e.to_string().contains("inputs not written"), "{e}");
        failing.store(false, Ordering::SeqCst);
        let (_, bytes) = w.finish().unwrap();
        assert_eq!(
            bytes,
            4 + CHUNK as u64 + 5,
            "what failed to go is handed over at the end"
        );
    }

    /// `/dev/full` fails every write with ENOSPC, as a full disk does.
    #[cfg(target_os = "linux")]
    #[test]
    fn a_failed_write_is_reported_by_later_commits_and_by_finish() {
        let mut w = create_artifact(Path::new("/dev/full")).unwrap();
        let row = vec![b'x'; 1000];
        let mut reported = None;
        for _ in 0..10_000 {
            w.buffer().extend_from_slice(&row);
            if let Err(e) = w.commit() {
                reported = Some(e);
                break;
            }
        }
        let reported = reported.expect("a commit after the failed chunk reports it");
        assert!(reported.to_string().contains("No space left"), "{reported}");
        let at_end = w.finish().unwrap_err();
        assert!(at_end.to_string().contains("No space left"), "{at_end}");
    }
}
