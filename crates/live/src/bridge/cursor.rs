//! [`Cursor`]: where a bridge is in its directory — the last scan file it read (by modification
//! time, then name), the map sequence it published it under, and its counters — kept in
//! `<data_dir>/maps/<map>.bridge.json` so a restarted bridge reads on from there.

use std::fs::File;
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};
use tradeloom_queue::MapSnapshot;

/// Where files are ordered: modification time in nanoseconds since the epoch, then name.
pub type FileKey = (i128, String);

/// The bridge's position and counters, as kept in `<map>.bridge.json`.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Cursor {
    /// The map the bridge publishes into.
    pub map: String,
    /// The directory it watches, as given.
    pub watch: String,
    /// The last file read (published or skipped as malformed), if any.
    pub last_file: Option<String>,
    /// Its modification time, nanoseconds since the epoch.
    pub last_mtime_ns: Option<i128>,
    /// The map sequence of the last scan published.
    pub last_seq: u64,
    /// Scans published since the cursor was created.
    pub published: u64,
    /// Files skipped as malformed since the cursor was created.
    pub malformed: u64,
}

impl Cursor {
    /// The key of the last file read: files at or before it are old.
    pub fn key(&self) -> Option<FileKey> {
        Some((self.last_mtime_ns?, self.last_file.clone()?))
    }

    /// Whether a file with `key` comes after the last file read.
    pub fn is_new(&self, key: &FileKey) -> bool {
        match self.key() {
            Some(last) => *key > last,
            None => true,
        }
    }

    /// The cursor file of map `map` under `maps` (`<data_dir>/maps`).
    pub fn path(maps: &Path, map: &str) -> PathBuf {
        maps.join(format!("{map}.bridge.json"))
    }

    /// Reads the cursor file; `Ok(None)` if there is none.
    pub fn load(path: &Path) -> Result<Option<Self>, String> {
        match std::fs::read(path) {
            Ok(bytes) => serde_json::from_slice(&bytes)
                .map(Some)
                .map_err(|e| format!("{}: not a bridge cursor: {e}", path.display())),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
            Err(e) => Err(format!("{}: {e}", path.display())),
        }
    }

    /// Writes the cursor file atomically (a rename: a bridge killed at any point leaves the old
    /// or the new cursor, never half of one). [`CursorFile`] does the same without the rename.
    pub fn save(&self, path: &Path) -> Result<(), String> {
        let bytes = serde_json::to_vec_pretty(self).map_err(|e| e.to_string())?;
        tradeloom_safety::write_atomic(path, &bytes, tradeloom_safety::Durability::Renamed)
            .map_err(|e| e.to_string())
    }

    /// Brings the cursor up to the map: a bridge killed after publishing a scan but before
    /// saving its cursor finds that scan (its file name and time) as the map's latest, and
    /// must not publish the file again.
    pub fn catch_up(&mut self, latest: Option<&MapSnapshot>) {
        let Some(latest) = latest else { return };
        if latest.seq <= self.last_seq {
            return;
        }
        let mtime_ns = latest
            .updated_at
            .timestamp_nanos_opt()
            .map(i128::from)
            .unwrap_or_else(|| i128::from(latest.updated_at.timestamp()) * 1_000_000_000);
        let key = (mtime_ns, latest.source.clone());
        if self.is_new(&key) {
            self.last_mtime_ns = Some(mtime_ns);
            self.last_file = Some(latest.source.clone());
            self.published += latest.seq - self.last_seq;
        }
        self.last_seq = latest.seq;
    }
}

/// The most a cursor rewritten in place may take: one page (the smallest page size of the
/// platforms we run on).
const IN_PLACE_MAX: usize = 4096;

/// A bridge's cursor file, rewritten after every scan file.
///
/// A rename over an existing file can take milliseconds (the file system flushes the new
/// file's data first, e.g. ext4's `auto_da_alloc`), too long for the scan's path to the trader.
/// So the file is created once through a temporary file and a rename, then rewritten in place:
/// one write of at most a page at offset 0, padded with spaces to the length the file had (JSON
/// followed by whitespace is still the same JSON). The kernel copies such a write whole or not
/// at all, also when the process is killed, so a bridge killed at any point (`kill -9`) leaves
/// the old or the new cursor, never a mix. A power loss may tear the page; the bridge then
/// refuses the unreadable cursor at start, naming the file.
#[derive(Debug)]
pub struct CursorFile {
    path: PathBuf,
    /// The file, once it was created whole by a rename; its length.
    file: Option<(File, usize)>,
}

impl CursorFile {
    /// The cursor file at `path` (nothing is opened yet).
    pub fn new(path: PathBuf) -> Self {
        Self { path, file: None }
    }

    /// Where it is.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Writes `cursor` (see the type's documentation).
    pub fn save(&mut self, cursor: &Cursor) -> Result<(), String> {
        let mut bytes = serde_json::to_vec_pretty(cursor).map_err(|e| e.to_string())?;
        if let Some((file, len)) = &mut self.file
            && bytes.len().max(*len) <= IN_PLACE_MAX
        {
            if bytes.len() < *len {
                bytes.resize(*len, b' ');
            }
            match write_in_place(file, &bytes) {
                Ok(()) => {
                    *len = bytes.len();
                    return Ok(());
                }
                Err(e) => {
                    tracing::debug!(path = %self.path.display(), "rewriting the cursor: {e}");
                }
            }
        }
        // The first write, one larger than a page, or after a failed write: whole, by rename.
        self.file = None;
        tradeloom_safety::write_atomic(&self.path, &bytes, tradeloom_safety::Durability::Renamed)
            .map_err(|e| e.to_string())?;
        match File::options().write(true).open(&self.path) {
            Ok(file) => self.file = Some((file, bytes.len())),
            Err(e) => tracing::debug!(path = %self.path.display(), "reopening the cursor: {e}"),
        }
        Ok(())
    }
}

/// One positioned write of `bytes` at offset 0.
#[cfg(unix)]
fn write_in_place(file: &File, bytes: &[u8]) -> std::io::Result<()> {
    use std::os::unix::fs::FileExt;
    let written = file.write_at(bytes, 0)?;
    if written == bytes.len() {
        Ok(())
    } else {
        Err(std::io::Error::other(format!(
            "wrote {written} of {} bytes",
            bytes.len()
        )))
    }
}

/// Elsewhere the cursor is always written by rename.
#[cfg(not(unix))]
fn write_in_place(_file: &File, _bytes: &[u8]) -> std::io::Result<()> {
    Err(std::io::Error::other("in-place writes are for unix"))
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    fn cursor(file: &str, seq: u64) -> Cursor {
        Cursor {
            map: "scans".to_string(),
            watch: "/data/scans".to_string(),
            last_file: Some(file.to_string()),
            last_mtime_ns: Some(1_780_000_000_000_000_000 + i128::from(seq)),
            last_seq: seq,
            published: seq,
            malformed: 0,
        }
    }

    #[test]
    fn a_cursor_rewritten_in_place_reads_back_whatever_its_length() {
        let dir = tempfile::tempdir().unwrap();
        let path = Cursor::path(dir.path(), "scans");
        let mut file = CursorFile::new(path.clone());
        // Long, shorter, longer again: a shorter cursor leaves no tail of the longer one.
        for (name, seq) in [
            ("scan-with-a-rather-long-name-000001.csv", 1),
            ("s2.csv", 2),
            ("scan-000003.csv", 3),
            (
                "scan-with-an-even-much-longer-name-than-the-first-000004.csv",
                4,
            ),
            ("s5.csv", 5),
        ] {
            file.save(&cursor(name, seq)).unwrap();
            assert_eq!(Cursor::load(&path).unwrap(), Some(cursor(name, seq)));
        }
        // One too long for a page goes through a rename, and in place again after it.
        let mut long = cursor("s6.csv", 6);
        long.watch = "w".repeat(IN_PLACE_MAX);
        file.save(&long).unwrap();
        assert_eq!(Cursor::load(&path).unwrap(), Some(long));
        file.save(&cursor("s7.csv", 7)).unwrap();
        assert_eq!(Cursor::load(&path).unwrap(), Some(cursor("s7.csv", 7)));
        let names: Vec<String> = std::fs::read_dir(dir.path())
            .unwrap()
            .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
            .collect();
        assert_eq!(
            names,
            vec!["scans.bridge.json".to_string()],
            "no temporary file left"
        );
    }
}
