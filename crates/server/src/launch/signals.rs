//! The stop signals of a long-running process.

use super::LaunchError;

/// SIGTERM (systemd, containers) and SIGINT (Ctrl-C), listened for from creation on: a signal
/// that arrives before anything waits on it is still seen.
pub struct StopSignals {
    #[cfg(unix)]
    term: tokio::signal::unix::Signal,
    #[cfg(unix)]
    int: tokio::signal::unix::Signal,
}

impl StopSignals {
    /// Starts listening for both.
    pub fn install() -> Result<Self, LaunchError> {
        #[cfg(unix)]
        {
            use tokio::signal::unix::{SignalKind, signal};
            let listen = |kind, signal_name| {
                signal(kind).map_err(|source| LaunchError::Signal {
                    signal: signal_name,
                    source,
                })
            };
            Ok(Self {
                term: listen(SignalKind::terminate(), "SIGTERM")?,
                int: listen(SignalKind::interrupt(), "SIGINT")?,
            })
        }
        #[cfg(not(unix))]
        Ok(Self {})
    }

    /// Waits for the first of them; returns its name.
    pub async fn recv(&mut self) -> &'static str {
        #[cfg(unix)]
        {
            tokio::select! {
                _ = self.term.recv() => "SIGTERM",
                _ = self.int.recv() => "SIGINT",
            }
        }
        #[cfg(not(unix))]
        {
            let _ = tokio::signal::ctrl_c().await;
            "ctrl-c"
        }
    }
}
