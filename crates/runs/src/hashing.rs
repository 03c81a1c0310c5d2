//! sha256 of files and of artifacts as they are written (no second read).

use std::fs::File;
use std::io::{self, BufWriter, Read, Write};
use std::path::Path;

use sha2::{Digest, Sha256};

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

/// A buffered, hashing file writer: what every artifact is written through.
pub type ArtifactWriter = BufWriter<HashingWriter<File>>;

/// Creates (or truncates) an artifact file. It is opened for reading too, so that a writer can
/// inspect what reached the disk after a failed write (see [`crate::journal`]).
pub fn create_artifact(path: &Path) -> io::Result<ArtifactWriter> {
    let file = File::options()
        .read(true)
        .write(true)
        .create(true)
        .truncate(true)
        .open(path)?;
    Ok(BufWriter::with_capacity(
        256 * 1024,
        HashingWriter::new(file),
    ))
}

/// Flushes an artifact to disk and returns its sha256 and size.
pub fn finish_artifact(writer: ArtifactWriter) -> io::Result<(String, u64)> {
    let hashing = writer.into_inner().map_err(|e| e.into_error())?;
    let (digest, bytes, file) = hashing.finish();
    file.sync_data()?;
    Ok((digest, bytes))
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
}
