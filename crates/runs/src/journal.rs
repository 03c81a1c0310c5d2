//! `journal.jsonl`: append-only, one JSON object per line, numbered from 1 (`seq`), with event
//! times only.
//!
//! A line is handed to the writer in one piece, and a failed write (a full disk, a file size
//! limit) closes the journal: what the writer had not flushed is dropped and the file is cut back
//! to its last complete line, so the journal never ends in a partial line. Later appends fail.

use std::fs::File;
use std::io::{self, Read, Seek, SeekFrom, Write};

use serde::Serialize;

use crate::hashing::ArtifactWriter;

/// Writes journal lines.
pub struct Journal {
    /// `None` once a write failed (the journal is closed).
    out: Option<ArtifactWriter>,
    seq: u64,
    event: Vec<u8>,
    line: Vec<u8>,
    /// Why the journal was closed, repeated by later appends.
    closed: Option<(io::ErrorKind, String)>,
}

impl Journal {
    pub fn new(out: ArtifactWriter) -> Self {
        Self {
            out: Some(out),
            seq: 0,
            event: Vec::with_capacity(512),
            line: Vec::with_capacity(512),
            closed: None,
        }
    }

    /// Appends one event (any value that serialises to a JSON object) as
    /// `{"seq":N,<the event's fields>}`. On a write error the journal is closed (see the module
    /// documentation) and this and every later append return the error.
    pub fn append<T: Serialize>(&mut self, event: &T) -> io::Result<()> {
        if let Some((kind, message)) = &self.closed {
            return Err(io::Error::new(*kind, message.clone()));
        }
        self.event.clear();
        serde_json::to_writer(&mut self.event, event).map_err(io::Error::other)?;
        if self.event.first() != Some(&b'{') {
            return Err(io::Error::other("journal events must be JSON objects"));
        }
        let seq = self.seq + 1;
        let mut num = itoa::Buffer::new();
        self.line.clear();
        self.line.extend_from_slice(b"{\"seq\":");
        self.line.extend_from_slice(num.format(seq).as_bytes());
        if self.event.len() > 2 {
            self.line.push(b',');
        }
        self.line.extend_from_slice(&self.event[1..]);
        self.line.push(b'\n');
        let result = match self.out.as_mut() {
            Some(out) => out.write_all(&self.line),
            None => Err(io::Error::other("journal.jsonl is closed")),
        };
        match result {
            Ok(()) => {
                self.seq = seq;
                Ok(())
            }
            Err(e) => Err(self.close_after(e)),
        }
    }

    /// Closes the journal after `error`: drops the unflushed bytes and cuts the file back to
    /// its last complete line. Returns the error to report.
    fn close_after(&mut self, error: io::Error) -> io::Error {
        let mut message = error.to_string();
        if let Some(out) = self.out.take() {
            // `into_parts` hands back the writer without flushing what it still buffers.
            let (hashing, _unwritten) = out.into_parts();
            let (_, _, mut file) = hashing.finish();
            if let Err(cut) = cut_to_last_line(&mut file) {
                message = format!("{message} (and cutting the partial last line failed: {cut})");
            }
        }
        self.closed = Some((error.kind(), message.clone()));
        io::Error::new(error.kind(), message)
    }

    /// Lines written (the `seq` of the last one).
    pub fn len(&self) -> u64 {
        self.seq
    }

    pub fn is_empty(&self) -> bool {
        self.seq == 0
    }

    /// The writer, to be flushed and hashed; an error if a write failed and closed the journal.
    pub fn into_inner(self) -> io::Result<ArtifactWriter> {
        match (self.out, self.closed) {
            (Some(out), _) => Ok(out),
            (None, Some((kind, message))) => Err(io::Error::new(kind, message)),
            (None, None) => Err(io::Error::other("journal.jsonl is closed")),
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
        let out = create_artifact(std::path::Path::new("/dev/full")).unwrap();
        let mut j = Journal::new(out);
        let big = "z".repeat(300 * 1024); // more than the writer buffers, so it reaches the file
        let err = j
            .append(&serde_json::json!({"event": "a", "big": big}))
            .unwrap_err();
        assert!(err.to_string().contains("No space left"), "{err}");
        assert_eq!(j.len(), 0, "the failed line is not counted");
        let again = j.append(&serde_json::json!({"event": "b"})).unwrap_err();
        assert!(again.to_string().contains("No space left"), "{again}");
        assert!(j.into_inner().is_err());
    }
}
