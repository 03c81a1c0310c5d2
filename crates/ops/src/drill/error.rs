//! Why a drill stopped: what it was doing and the underlying cause, as in its report's `error`.

use std::time::Duration;

use tradeloom_store::StoreError;

/// Why a drill could not go on (or could not be set up, or its report not be written).
#[derive(Debug, thiserror::Error)]
pub enum DrillError {
    /// A file, folder or process call of the operating system failed while `what`.
    #[error("{what}")]
    Io {
        /// What the drill was doing, naming the path or command.
        what: String,
        /// The OS error.
        source: std::io::Error,
    },
    /// Text that should have been JSON was not.
    #[error("{what}")]
    Json {
        /// Which text, and where it came from.
        what: String,
        /// The parse error.
        source: serde_json::Error,
    },
    /// The drill's own access to a store (such as the SQLite write lock) failed.
    #[error("{what}")]
    Store {
        /// What the drill was doing with the store.
        what: String,
        /// The store's error.
        source: StoreError,
    },
    /// A request to the drill's `tradeloom serve` got no answer.
    #[error(transparent)]
    Http(#[from] tradeloom_client::Error),
    /// A set-up command of the drill exited unsuccessfully.
    #[error("{command} failed: {detail}")]
    Command {
        /// The command line, e.g. `tradeloom data synth`.
        command: String,
        /// Its exit status and the tail of its stderr.
        detail: String,
    },
    /// A child process did not start, end or answer as the drill needs it to.
    #[error("{0}")]
    Process(String),
    /// A step the rest of the drill depends on failed.
    #[error("step `{name}` failed: expected {expected}; observed {observed}")]
    Step {
        /// The step's name.
        name: String,
        /// What the step expected.
        expected: String,
        /// What it observed.
        observed: String,
    },
    /// An answer, file or event the drill cannot go on from.
    #[error("{0}")]
    Observed(String),
    /// The drill did not finish within its time limit.
    #[error("the drill did not finish within {0:?}; its processes were killed")]
    Timeout(Duration),
    /// An error of a larger step, `what` naming that step.
    #[error("{what}")]
    Context {
        /// The larger step.
        what: String,
        /// What went wrong inside it.
        source: Box<DrillError>,
    },
}

impl DrillError {
    /// An [`DrillError::Io`] error while `what`.
    pub(crate) fn io(what: impl Into<String>) -> impl FnOnce(std::io::Error) -> Self {
        let what = what.into();
        move |source| Self::Io { what, source }
    }

    /// A [`DrillError::Json`] error for the text `what`.
    pub(crate) fn json(what: impl Into<String>) -> impl FnOnce(serde_json::Error) -> Self {
        let what = what.into();
        move |source| Self::Json { what, source }
    }

    /// A [`DrillError::Store`] error while `what`.
    pub(crate) fn store(what: impl Into<String>) -> impl FnOnce(StoreError) -> Self {
        let what = what.into();
        move |source| Self::Store { what, source }
    }

    /// This error inside the larger step `what`.
    pub(crate) fn within(self, what: impl Into<String>) -> Self {
        Self::Context {
            what: what.into(),
            source: Box::new(self),
        }
    }

    /// The message and every cause under it, joined with `: ` (as written in a report).
    pub fn chain(&self) -> String {
        chain(self)
    }
}

/// An error's message and every cause under it, joined with `: `.
pub(crate) fn chain(error: &dyn std::error::Error) -> String {
    let mut text = error.to_string();
    let mut cause = error.source();
    while let Some(e) = cause {
        text.push_str(": ");
        text.push_str(&e.to_string());
        cause = e.source();
    }
    text
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_chain_names_each_step_down_to_the_os_error() {
        let io = std::io::Error::new(std::io::ErrorKind::NotFound, "no such file");
        let error =
            DrillError::io("reading /x/journal.jsonl")(io).within("run r-1 after the restart");
        assert_eq!(
            error.chain(),
            "run r-1 after the restart: reading /x/journal.jsonl: no such file"
        );
        let step = DrillError::Step {
            name: "release".to_string(),
            expected: "exit 0".to_string(),
            observed: "exit status: 2".to_string(),
        };
        assert_eq!(
            step.chain(),
            "step `release` failed: expected exit 0; observed exit status: 2"
        );
    }
}
