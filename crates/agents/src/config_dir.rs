//! The one folder from which API callers and workflows may name simulation config files
//! (`config_path`): `tradeloom serve --config-dir DIR`. Without it, `config_path` is disabled.
//!
//! A path is taken relative to the folder (an absolute path must lie in it), may not contain
//! `..`, and must resolve, symlinks followed, to a regular file inside the folder of at most
//! [`MAX_CONFIG_BYTES`]. Errors name the path as the caller gave it and never show a file's
//! content (see [`ConfigDir::load`]).

use std::path::{Component, Path, PathBuf};

use crate::config::{ResolvedConfig, load_config_quietly};
use crate::error::AgentError;

/// The largest config file read through a [`ConfigDir`].
pub const MAX_CONFIG_BYTES: u64 = 1024 * 1024;

/// Why a `config_path` was refused before anything was read.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum ConfigPathError {
    /// The server has no config folder.
    #[error(
        "config_path is disabled: this server reads no config files; send the config inline \
         (`config`), or start `tradeloom serve --config-dir DIR` to allow files under DIR"
    )]
    Disabled,
    /// The path is not a readable file inside the config folder.
    #[error("config_path `{requested}` {reason}")]
    Refused { requested: String, reason: String },
}

/// A file inside the config folder, checked by [`ConfigDir::resolve`].
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ConfigFile {
    /// The canonical path.
    pub path: PathBuf,
    /// Relative to the config folder: how errors name it.
    pub shown: String,
}

/// The config folder (canonical).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ConfigDir {
    root: PathBuf,
}

impl ConfigDir {
    /// The folder `dir`, which must exist.
    pub fn new(dir: &Path) -> Result<Self, AgentError> {
        let root = dir.canonicalize().map_err(|e| AgentError::Config {
            place: "--config-dir".into(),
            message: format!("cannot use {} as the config folder: {e}", dir.display()),
        })?;
        if !root.is_dir() {
            return Err(AgentError::Config {
                place: "--config-dir".into(),
                message: format!("{} is not a folder", dir.display()),
            });
        }
        Ok(ConfigDir { root })
    }

    /// The canonical folder.
    pub fn root(&self) -> &Path {
        &self.root
    }

    /// The file `requested` names, in `dir`; [`ConfigPathError::Disabled`] without a folder.
    pub fn resolve_in(
        dir: Option<&ConfigDir>,
        requested: &str,
    ) -> Result<ConfigFile, ConfigPathError> {
        dir.ok_or(ConfigPathError::Disabled)?.resolve(requested)
    }

    /// The file `requested` names, if it is a regular file inside the folder.
    pub fn resolve(&self, requested: &str) -> Result<ConfigFile, ConfigPathError> {
        let refuse = |reason: &str| ConfigPathError::Refused {
            requested: requested.to_string(),
            reason: reason.to_string(),
        };
        let given = Path::new(requested.trim());
        if given.as_os_str().is_empty() {
            return Err(refuse("is empty"));
        }
        // Decided on the text first, so a refusal says nothing of files outside the folder.
        if given.components().any(|c| c == Component::ParentDir) {
            return Err(refuse(
                "may not contain `..`; name a file inside the config folder",
            ));
        }
        let joined = if given.is_absolute() {
            if !given.starts_with(&self.root) {
                return Err(refuse("is outside the config folder"));
            }
            given.to_path_buf()
        } else {
            self.root.join(given)
        };
        let path = joined
            .canonicalize()
            .map_err(|_| refuse("does not exist in the config folder"))?;
        if !path.starts_with(&self.root) {
            return Err(refuse(
                "resolves (through a symlink) outside the config folder",
            ));
        }
        let meta = std::fs::metadata(&path).map_err(|_| refuse("cannot be read"))?;
        if !meta.is_file() {
            return Err(refuse("is not a regular file"));
        }
        if meta.len() > MAX_CONFIG_BYTES {
            return Err(refuse(&format!("is larger than {MAX_CONFIG_BYTES} bytes")));
        }
        let shown = path
            .strip_prefix(&self.root)
            .map_or_else(|_| requested.to_string(), |p| p.display().to_string());
        Ok(ConfigFile { path, shown })
    }

    /// Reads and checks the config `file`. Errors name the file relative to the folder, the
    /// line and the field, and quote no value of the file (a parse error never shows the
    /// line it failed on).
    pub fn load(&self, file: &ConfigFile) -> Result<ResolvedConfig, AgentError> {
        load_config_quietly(&file.path, &file.shown)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn refused(r: Result<ConfigFile, ConfigPathError>) -> String {
        match r {
            Err(ConfigPathError::Refused { reason, .. }) => reason,
            other => panic!("expected a refusal, got {other:?}"),
        }
    }

    #[test]
    fn paths_stay_inside_the_folder() {
        let outside = tempfile::TempDir::new().unwrap();
        let secret = outside.path().join("secret.yaml");
        std::fs::write(&secret, "x: 1\n").unwrap();
        let root = tempfile::TempDir::new().unwrap();
        std::fs::create_dir(root.path().join("sub")).unwrap();
        std::fs::write(root.path().join("sub/ok.yaml"), "x: 1\n").unwrap();
        std::os::unix::fs::symlink(&secret, root.path().join("link.yaml")).unwrap();
        std::os::unix::fs::symlink(
            root.path().join("sub/ok.yaml"),
            root.path().join("inner.yaml"),
        )
        .unwrap();
        let dir = ConfigDir::new(root.path()).unwrap();

        let ok = dir.resolve("sub/ok.yaml").unwrap();
        assert_eq!(ok.shown, "sub/ok.yaml");
        let abs = dir.root().join("sub/ok.yaml");
        assert_eq!(dir.resolve(abs.to_str().unwrap()).unwrap(), ok);
        assert_eq!(
            dir.resolve("inner.yaml").unwrap(),
            ok,
            "symlinks inside are followed"
        );

        assert!(refused(dir.resolve("../x.yaml")).contains("`..`"));
        assert!(refused(dir.resolve("sub/../sub/ok.yaml")).contains("`..`"));
        assert!(refused(dir.resolve(secret.to_str().unwrap())).contains("outside"));
        assert!(refused(dir.resolve("/etc/passwd")).contains("outside"));
        assert!(refused(dir.resolve("link.yaml")).contains("symlink"));
        assert!(refused(dir.resolve("nope.yaml")).contains("does not exist"));
        assert!(refused(dir.resolve("sub")).contains("not a regular file"));
        assert!(refused(dir.resolve(" ")).contains("empty"));
        assert_eq!(
            ConfigDir::resolve_in(None, "sub/ok.yaml"),
            Err(ConfigPathError::Disabled)
        );
    }
}
