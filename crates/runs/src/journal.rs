//! `journal.jsonl`: append-only, one JSON object per line, numbered from 1 (`seq`), with event
//! times only.
//!
//! Lines are serialised straight into the artifact's buffer, and chunks of whole lines are
//! hashed and written by the run's writer thread ([`crate::hashing`]). A failed write (a full
//! disk, a file size limit) closes the journal: the writer thread drops every later chunk and cuts
//! the file back to its last complete line, so the journal never ends in a partial line; the
//! next append that hands a chunk over (and the end of the run) reports the error, and every
//! append after it fails.

use std::fs::File;
use std::io::{self, Read, Seek, SeekFrom};

use serde::Serialize;

use crate::hashing::ArtifactWriter;

/// Writes journal lines.
pub struct Journal {
    out: ArtifactWriter,
    seq: u64,
    /// Why the journal was closed, repeated by later appends.
    closed: Option<(io::ErrorKind, String)>,
    /// `,"wall_ts":"…"}` ending every line of a paper run (`None`: a backtest's lines).
    wall_suffix: Option<Vec<u8>>,
    /// A resumed paper run: the lines already in the file, which the regenerated lines must
    /// repeat exactly (they are checked, not written again), and how far they were checked.
    existing: Option<(Vec<u8>, usize)>,
}

impl Journal {
    pub fn new(out: ArtifactWriter) -> Self {
        Self {
            out,
            seq: 0,
            closed: None,
            wall_suffix: None,
            existing: None,
        }
    }

    /// A journal whose file already holds `existing` (whole lines; `out` appends after them):
    /// the next appends regenerate those lines and must equal them byte for byte; they are
    /// checked, not written, and a difference closes the journal with an error naming the
    /// line. Appends after them are written.
    pub fn resumed(out: ArtifactWriter, existing: Vec<u8>) -> Self {
        let mut journal = Self::new(out);
        if !existing.is_empty() {
            journal.existing = Some((existing, 0));
        }
        journal
    }

    /// Lines of the existing file not regenerated yet (0 once the regenerated lines caught up).
    pub fn pending_existing(&self) -> usize {
        self.existing.as_ref().map_or(0, |(bytes, at)| {
            bytes[*at..].iter().filter(|&&b| b == b'\n').count()
        })
    }

    /// Ends every later line with `"wall_ts"` (RFC 3339 UTC with nanoseconds), or with nothing.
    pub fn set_wall_ts(&mut self, wall: Option<&str>) {
        match (wall, self.wall_suffix.as_mut()) {
            // A paper run sets it per event: the buffer is reused.
            (Some(w), Some(suffix)) => {
                suffix.clear();
                suffix.extend_from_slice(b",\"wall_ts\":\"");
                suffix.extend_from_slice(w.as_bytes());
                suffix.extend_from_slice(b"\"}");
            }
            (Some(w), None) => {
                self.wall_suffix = Some(format!(",\"wall_ts\":\"{w}\"}}").into_bytes());
            }
            (None, _) => self.wall_suffix = None,
        }
    }

    /// Hands what is buffered to the writer thread (so that a reader sees it soon).
    pub fn hand_over(&mut self) -> io::Result<()> {
        if let Some((kind, message)) = &self.closed {
            return Err(io::Error::new(*kind, message.clone()));
        }
        self.out.hand_over().map_err(|e| self.close_after(e))
    }

    /// Appends one event (any value that serialises to a JSON object) as
    /// `{"seq":N,<the event's fields>}`. Once a write failed the journal is closed (see the
    /// module documentation) and this and every later append return the error.
    pub fn append<T: Serialize>(&mut self, event: &T) -> io::Result<()> {
        if let Some((kind, message)) = &self.closed {
            return Err(io::Error::new(*kind, message.clone()));
        }
        let seq = self.seq + 1;
        let buf = self.out.buffer();
        let start = buf.len();
        buf.extend_from_slice(b"{\"seq\":");
        buf.extend_from_slice(itoa::Buffer::new().format(seq).as_bytes());
        let body = buf.len();
        let serialised = serde_json::to_writer(&mut *buf, event);
        // The event's own `{` becomes the comma after `seq` (or goes, for an empty object).
        let object = buf.get(body) == Some(&b'{') && buf.last() == Some(&b'}');
        match serialised {
            Ok(()) if object => {
                if buf.len() - body == 2 {
                    buf.truncate(body);
                    buf.push(b'}');
                } else {
                    buf[body] = b',';
                }
                if let Some(suffix) = &self.wall_suffix {
                    buf.pop();
                    buf.extend_from_slice(suffix);
                }
                buf.push(b'\n');
            }
            Ok(()) => {
                buf.truncate(start);
                return Err(io::Error::other("journal events must be JSON objects"));
            }
            Err(e) => {
                buf.truncate(start);
                return Err(io::Error::other(e));
            }
        }
        self.seq = seq;
        if let Some((existing, at)) = self.existing.as_mut() {
            let len = buf.len() - start;
            let matches = existing.get(*at..*at + len) == Some(&buf[start..]);
            buf.truncate(start);
            if !matches {
                let message = format!(
                    "resume: journal line {seq} regenerated from state/inputs.jsonl differs from \
                     the line in journal.jsonl"
                );
                self.closed = Some((io::ErrorKind::InvalidData, message.clone()));
                return Err(io::Error::new(io::ErrorKind::InvalidData, message));
            }
            *at += len;
            if *at == existing.len() {
                self.existing = None;
            }
            return Ok(());
        }
        self.out.commit().map_err(|e| self.close_after(e))
    }

    /// Closes the journal after `error` (the writer thread has cut the file back to its last
    /// complete line). Returns the error to report.
    fn close_after(&mut self, error: io::Error) -> io::Error {
        let (kind, message) = (error.kind(), error.to_string());
        self.closed = Some((kind, message.clone()));
        io::Error::new(kind, message)
    }

    /// Lines appended (the `seq` of the last one).
    pub fn len(&self) -> u64 {
        self.seq
    }

    pub fn is_empty(&self) -> bool {
        self.seq == 0
    }

    /// The writer, to be finished (flushed, hashed, synced); an error if a write failed and
    /// closed the journal.
    pub fn into_inner(self) -> io::Result<ArtifactWriter> {
        match self.closed {
            None => Ok(self.out),
            Some((kind, message)) => Err(io::Error::new(kind, message)),
        }
    }
}

/// Truncates `file` right after its last `\n` (to nothing when there is none), removing a
/// partial last line. Returns the new length.
pub fn cut_to_last_line(file: &mut File) -> io::Result<u64> {
    const BLOCK: u64 = 8192;
    let len = file.metadata()?.len();
    let mut end = len;
    let mut block = vec![0u8; BLOCK as usize];
    let keep = loop {
        if end == 0 {
            break 0;
        }
        let start = end.saturating_sub(BLOCK);
        let chunk = &mut block[..(end - start) as usize];
        file.seek(SeekFrom::Start(start))?;
        file.read_exact(chunk)?;
        if let Some(i) = chunk.iter().rposition(|&b| b == b'\n') {
            break start + i as u64 + 1;
        }
        end = start;
    };
    if keep < len {
        file.set_len(keep)?;
        file.sync_data()?;
    }
    Ok(keep)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::hashing::create_artifact;

    #[test]
    fn lines_are_numbered_objects() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("journal.jsonl");
        let mut j = Journal::new(create_artifact(&path).unwrap());
        j.append(&serde_json::json!({"event": "a", "x": 1}))
            .unwrap();
        j.append(&serde_json::json!({})).unwrap();
        assert!(j.append(&serde_json::json!([1])).is_err());
        assert_eq!(j.len(), 2);
        crate::hashing::finish_artifact(j.into_inner().unwrap()).unwrap();
        let text = std::fs::read_to_string(&path).unwrap();
        assert_eq!(text, "{\"seq\":1,\"event\":\"a\",\"x\":1}\n{\"seq\":2}\n");
    }

    #[test]
    fn cutting_removes_only_a_partial_last_line() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("j");
        let long = "y".repeat(20_000);
        for (text, expected) in [
            ("a\nb\npartial", "a\nb\n"),
            ("a\nb\n", "a\nb\n"),
            ("no newline", ""),
            ("", ""),
        ] {
            std::fs::write(&path, text).unwrap();
            let mut f = File::options().read(true).write(true).open(&path).unwrap();
            cut_to_last_line(&mut f).unwrap();
            assert_eq!(std::fs::read_to_string(&path).unwrap(), expected);
        }
        // The last newline several blocks before the end.
        std::fs::write(&path, format!("first\n{long}")).unwrap();
        let mut f = File::options().read(true).write(true).open(&path).unwrap();
        assert_eq!(cut_to_last_line(&mut f).unwrap(), 6);
    }

    /// `/dev/full` fails every write with ENOSPC, as a full disk does.
    #[cfg(target_os = "linux")]
    #[test]
    fn a_failed_write_closes_the_journal() {
        let out = crate::hashing::ArtifactPipe::spawn()
            .unwrap()
            .create_lines(std::path::Path::new("/dev/full"))
            .unwrap();
        let mut j = Journal::new(out);
        let big = "z".repeat(10 * 1024);
        let mut failed = None;
        for i in 0..10_000 {
            if let Err(e) = j.append(&serde_json::json!({"event": "a", "i": i, "big": big})) {
                failed = Some(e);
                break;
            }
        }
        let err = failed.expect("an append after the failed chunk reports it");
        assert!(err.to_string().contains("No space left"), "{err}");
        let again = j.append(&serde_json::json!({"event": "b"})).unwrap_err();
        assert!(again.to_string().contains("No space left"), "{again}");
        assert!(j.into_inner().is_err());
    }
}
