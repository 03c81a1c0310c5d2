//! ops: the operator's view of a tradeloom installation — reconciliation (books recomputed from
//! the journal's fills and compared with what was reported and stored) and the meta health
//! monitor (five sensors, `rm_meta`, recovery actions) — and the process supervisor that keeps
//! `tradeloom` children (traders, bridges, workers) running under restart policies and limits.
//!
//! It sits above `runs`, `store` and `queue` (whose process registry the monitor reads) and below `server` and `cli`: both the API and the command
//! line call the same functions.

pub mod artifact_metrics;
pub mod drill;
pub mod health;
pub mod reconcile;
pub mod supervisor;
