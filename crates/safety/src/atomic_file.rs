//! [`write_atomic`]: replace a file's content so that no reader (and no crash) ever sees half of
//! it — the state files of the kill switch, the health files, a job folder's files.

use std::io::Write;
use std::path::{Path, PathBuf};

/// Whether the bytes must be on disk before [`write_atomic`] returns.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Durability {
    /// fsync the file and (best effort) its folder: the write survives a power loss. For state
    /// that decides whether trading stops.
    Synced,
    /// Only the rename: a crashed process never leaves half a file, but a power loss may lose
    /// the write. For readable copies of what a store or a journal already holds durably.
    Renamed,
}

/// A file could not be written; `path` is the one that failed (the target or its temporary).
#[derive(Debug, thiserror::Error)]
#[error("{}: {source}", path.display())]
pub struct WriteError {
    /// The file or folder the failing operation was on.
    pub path: PathBuf,
    /// What the operating system said.
    #[source]
    pub source: std::io::Error,
}

/// Writes `bytes` to `path` through a temporary file beside it (`.<name>.<pid>.tmp`) and a
/// rename, creating the parent folder first. The temporary file is removed when a step fails.
pub fn write_atomic(path: &Path, bytes: &[u8], durability: Durability) -> Result<(), WriteError> {
    let fail = |path: &Path| {
        let path = path.to_path_buf();
        move |source| WriteError { path, source }
    };
    let dir = match path.parent() {
        Some(dir) if !dir.as_os_str().is_empty() => dir,
        _ => Path::new("."),
    };
    std::fs::create_dir_all(dir).map_err(fail(dir))?;
    let file_name = path
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default();
    let tmp = dir.join(format!(".{file_name}.{}.tmp", std::process::id()));
    let written = (|| {
        let mut file = std::fs::File::create(&tmp)?;
        file.write_all(bytes)?;
        if durability == Durability::Synced {
            file.sync_all()?;
        }
        Ok(())
    })();
    if let Err(e) = written {
        let _ = std::fs::remove_file(&tmp);
        return Err(fail(&tmp)(e));
    }
    if let Err(e) = std::fs::rename(&tmp, path) {
        let _ = std::fs::remove_file(&tmp);
        return Err(fail(path)(e));
    }
    if durability == Durability::Synced {
        // Persisting the rename itself; not every platform can open a folder, so best effort.
        if let Ok(d) = std::fs::File::open(dir) {
            let _ = d.sync_all();
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn replaces_the_content_and_leaves_no_temporary_file() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("sub").join("state.json");
        write_atomic(&path, b"one", Durability::Synced).unwrap();
        write_atomic(&path, b"two", Durability::Renamed).unwrap();
        assert_eq!(std::fs::read(&path).unwrap(), b"two");
        let names: Vec<_> = std::fs::read_dir(path.parent().unwrap())
            .unwrap()
            .map(|e| e.unwrap().file_name())
            .collect();
        assert_eq!(names, ["state.json"]);
    }

    #[test]
    fn a_failure_names_the_file() {
        let dir = tempfile::tempdir().unwrap();
        // A folder where the file should go: the rename fails.
        let path = dir.path().join("taken");
        std::fs::create_dir_all(path.join("inner")).unwrap();
        let e = write_atomic(&path, b"x", Durability::Renamed).unwrap_err();
        assert_eq!(e.path, path);
        assert!(
            e.to_string().starts_with(&path.display().to_string()),
            "{e}"
        );
        assert_eq!(std::fs::read_dir(dir.path()).unwrap().count(), 1);
    }
}
