//! Paper runs: the same engine loop as a backtest, fed by a live [`Feed`] on the wall clock.

pub mod feed;
pub mod feed_spec;
pub mod feed_state;
mod gate;
pub mod inputs;
pub mod orders;
pub mod resume;
pub mod runner;
pub mod snapshot;

pub use feed::{Feed, FeedError, FeedEvent, FeedPoll, FeedPosition, Scan, ScanRow, StopSignal};
pub use feed_spec::{
    FeedSpec, ReplayFeedSpec, ReplaySpeed, ScanDirFeedSpec, WebsocketFeedSpec, WebsocketFields,
    WebsocketPreset,
};
pub use resume::resume_spec;
pub use runner::{PaperObserver, PaperOptions, SNAPSHOT_INTERVAL, run_paper};

pub use crate::runner::replay_bars;
