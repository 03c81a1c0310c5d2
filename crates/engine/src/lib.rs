//! engine: the deterministic event loop of tradeloom — bars → strategy → orders → pre-trade
//! risk → simulated venue (named fill models, fees, slippage) → fills → portfolio → events.
//!
//! It does no I/O and reads no clock: [`Engine`] is a pure function of its configuration, its
//! strategies and the bars fed to it, reporting through a [`Sink`]. The same inputs give the same
//! sequence of events, byte for byte once serialised. It depends on `tradeloom-core` only; files,
//! formats and run folders live in the crates above it.

#![warn(missing_docs)]

pub mod analysis;
pub mod config;
pub mod engine;
pub mod fill_model;
pub mod gate;
pub mod indicator;
pub mod risk;
pub mod scan;
pub mod sink;
pub mod strategies;
pub mod strategy;
pub mod trade;
pub mod venue;

pub use analysis::{EquityPoint, Metrics};
pub use config::{
    ConfigError, EngineConfig, ExecutionConfig, KillSwitchConfig, MarginCallAction, MarginConfig,
    MarginRule, RiskConfig, Slippage,
};
pub use engine::{Engine, EngineError, EngineState, Strategies, Summary};
pub use fill_model::FillModel;
pub use gate::{GateEpoch, KillSwitchGate};
pub use risk::RiskRejection;
pub use scan::ScanFields;
pub use sink::{NullSink, Sink};
pub use strategies::{StrategyConfig, StrategyError, build_strategy};
pub use strategy::{
    Bracket, BracketIds, InstrumentKey, OrderRequest, QueuedOrders, StopLoss, Strategy,
    StrategyContext,
};
pub use trade::Trade;
