//! `journal.jsonl`: append-only, one JSON object per line, numbered from 1 (`seq`), with event
//! times only.

use std::io::{self, Write};

use serde::Serialize;

use crate::hashing::ArtifactWriter;

/// Writes journal lines.
pub struct Journal {
    out: ArtifactWriter,
    seq: u64,
    buf: Vec<u8>,
}

impl Journal {
    pub fn new(out: ArtifactWriter) -> Self {
        Self {
            out,
            seq: 0,
            buf: Vec::with_capacity(512),
        }
    }

    /// Appends one event (any value that serialises to a JSON object) as
    /// `{"seq":N,<the event's fields>}`.
    pub fn append<T: Serialize>(&mut self, event: &T) -> io::Result<()> {
        self.buf.clear();
        serde_json::to_writer(&mut self.buf, event).map_err(io::Error::other)?;
        if self.buf.first() != Some(&b'{') {
            return Err(io::Error::other("journal events must be JSON objects"));
        }
        self.seq += 1;
        let mut num = itoa::Buffer::new();
        self.out.write_all(b"{\"seq\":")?;
        self.out.write_all(num.format(self.seq).as_bytes())?;
        if self.buf.len() > 2 {
            self.out.write_all(b",")?;
        }
        self.out.write_all(&self.buf[1..])?;
        self.out.write_all(b"\n")
    }

    pub fn len(&self) -> u64 {
        self.seq
    }

    pub fn is_empty(&self) -> bool {
        self.seq == 0
    }

    pub fn into_inner(self) -> ArtifactWriter {
        self.out
    }
}
