//! live: the live layer of tradeloom — the feeds of paper runs (a replay of bar files on the wall
//! clock, a scan directory through the bridge and the feature map, a WebSocket bar stream), the
//! scan-file bridge, and the event-driven trader. Every feed implements
//! [`tradeloom_runs::paper::Feed`]; the paper runner in `tradeloom-runs` drives the same engine
//! loop as a backtest with it.

pub mod bridge;
pub mod replay;
pub mod scan_dir;
pub mod trader;
pub mod websocket;

use std::path::PathBuf;

use tradeloom_net::SsrfPolicy;
use tradeloom_runs::RunError;
use tradeloom_runs::paper::{Feed, FeedSpec};
use tradeloom_runs::spec::ResolvedSpec;

/// What opening a feed needs besides the spec.
#[derive(Clone, Debug, Default)]
pub struct FeedOptions {
    /// The data dir (feature maps and bridge state live under it).
    pub data_dir: PathBuf,
    /// The outbound guard's policy: a WebSocket feed's address must pass it.
    pub policy: SsrfPolicy,
}

/// Opens the feed a paper spec names. Errors name the spec field at fault.
pub fn open_feed(spec: &ResolvedSpec, options: &FeedOptions) -> Result<Box<dyn Feed>, RunError> {
    let Some(feed) = spec.spec.feed.as_ref() else {
        return Err(RunError::Spec {
            place: spec.path.display().to_string(),
            message: "feed: a paper spec needs a `feed:` section".to_string(),
        });
    };
    match feed {
        FeedSpec::Replay(replay) => Ok(Box::new(replay::ReplayFeed::open(spec, replay)?)),
        FeedSpec::ScanDir(feed) => Ok(Box::new(scan_dir::ScanDirFeed::open(spec, feed, options)?)),
        FeedSpec::Websocket(ws) => {
            websocket::WebsocketFeed::open(ws, &spec.instruments, &options.policy)
                .map(|feed| Box::new(feed) as Box<dyn Feed>)
                .map_err(|e| RunError::Spec {
                    place: spec_place(spec, &e.field),
                    message: e.message,
                })
        }
    }
}

/// `spec_path:line` of the line under `feed:` that sets `field`'s last part (`feed.url` →
/// the first `url:` line after `feed:`), or the spec path alone.
fn spec_place(spec: &ResolvedSpec, field: &str) -> String {
    let path = spec.path.display().to_string();
    let key = field.rsplit('.').next().unwrap_or(field);
    let mut in_feed = false;
    for (i, line) in spec.text.lines().enumerate() {
        let trimmed = line.trim_start();
        if trimmed.starts_with("feed:") {
            in_feed = true;
            if key == "feed" {
                return format!("{path}:{}", i + 1);
            }
        }
        if in_feed
            && (trimmed.starts_with(&format!("{key}:"))
                || line.contains(&format!(" {key}:"))
                || line.contains(&format!("{{{key}:")))
        {
            return format!("{path}:{}", i + 1);
        }
    }
    path
}
