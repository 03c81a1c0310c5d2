//! store: persistence of model-day simulation jobs (jobs, model-days, trades, holdings,
//! reasoning logs, tool usage) and the run index, behind one [`Store`] trait over SQLite and
//! PostgreSQL. It must not depend on the engine, the agents or anything HTTP: the worker and
//! the REST API build on it, not the other way round.
//!
//! Money, prices and quantities are stored exactly (decimal TEXT in SQLite, NUMERIC(38,18) in
//! PostgreSQL) and come back as [`tradeloom_core::Money`] and [`tradeloom_core::Decimal`].
//! Migrations are embedded per back end and applied by [`open_store`].
//!
//! ```no_run
//! # async fn demo() -> Result<(), tradeloom_store::StoreError> {
//! let store = tradeloom_store::open_store("data/tradeloom.db").await?;
//! store.health().await?;
//! # Ok(()) }
//! ```

mod api_key;
mod error;
mod job;
mod migration;
mod model_day;
mod numeric;
mod postgres;
mod results;
mod run_index;
mod schedule_fire;
mod scratch;
mod sql_store;
mod sqlite;
mod status_count;
mod store;
mod workflow;
mod workflow_run;

pub use api_key::{ApiKey, NewApiKey, Role, SECRET_PREFIX, api_key_hash};
pub use error::StoreError;
pub use job::{Job, JobProgress, JobReport, JobStatus, NewJob, config_hash};
pub use migration::{MigrationInfo, MigrationState};
pub use model_day::{
    Holding, ModelDay, ModelDayKey, ModelDayOutcome, ModelDayStatus, ModelDayStop,
    ReasoningMessage, ToolCall, Trade, TradeAction,
};
pub use postgres::PgStore;
pub use results::{
    DailyValue, LeaderboardEntry, MAX_PAGE, ModelDayResult, RATIO_DECIMALS, Ratio, ResultsFilter,
    ResultsPage,
};
pub use run_index::RunEntry;
pub use schedule_fire::ScheduleFire;
pub use scratch::{ScratchDatabase, with_database};
pub use sqlite::{BUSY_TIMEOUT, BUSY_TIMEOUT_ENV, ExclusiveLock, SqliteStore, busy_timeout};
pub use status_count::StatusCounts;
pub use store::{Backend, Location, Store, db_migrate, db_status, open_store};
pub use workflow::{Blob, NewWorkflowVersion, Workflow, WorkflowVersion, blob_hash};
pub use workflow_run::{
    Approval, ApprovalChange, ApprovalStatus, Decision, NewApproval, NewEvent, NewPatch,
    NewWorkflowRun, NodeChange, NodeState, NodeStatus, Patch, RunEvent, RunStatus, Transition,
    TransitionOutcome, WorkflowRun,
};
