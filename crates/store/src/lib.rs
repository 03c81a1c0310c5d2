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
//! use tradeloom_store::prelude::*;
//! # async fn demo() -> Result<(), tradeloom_store::StoreError> {
//! let store = tradeloom_store::open_store("data/tradeloom.db").await?;
//! store.health().await?;
//! # Ok(()) }
//! ```

mod admission_store;
mod api_key;
mod approval_link_store;
mod approval_store;
mod definition;
mod definition_store;
mod error;
mod health_store;
mod job;
mod job_store;
mod key_store;
mod migration;
mod model_day;
mod model_day_store;
mod numeric;
mod open;
mod postgres;
mod read_version;
mod result_store;
mod results;
mod run_index;
mod run_index_store;
mod run_store;
mod schedule_fire;
mod schedule_store;
mod scratch;
mod sql;
mod sqlite;
mod status_count;
mod store;
mod text;
mod workflow;
mod workflow_run;
mod workflow_store;

/// Every resource trait of [`Store`], so that `use tradeloom_store::prelude::*;` brings all of
/// a store's methods into scope.
pub mod prelude {
    pub use crate::admission_store::AdmissionStore;
    pub use crate::approval_link_store::ApprovalLinkStore;
    pub use crate::approval_store::ApprovalStore;
    pub use crate::definition_store::DefinitionStore;
    pub use crate::health_store::HealthStore;
    pub use crate::job_store::JobStore;
    pub use crate::key_store::KeyStore;
    pub use crate::model_day_store::ModelDayStore;
    pub use crate::result_store::ResultStore;
    pub use crate::run_index_store::RunIndexStore;
    pub use crate::run_store::RunStore;
    pub use crate::schedule_store::ScheduleStore;
    pub use crate::store::Store;
    pub use crate::workflow_store::WorkflowStore;
}

pub use admission_store::{ACTIVE_STATUSES, Admission, AdmissionStore, LimitKind, LimitReached};
pub use approval_link_store::{APPROVAL_LINK_KEY_BYTES, ApprovalLinkStore};
pub use approval_store::ApprovalStore;
pub use definition::{
    Author, Definition, DefinitionKind, DefinitionVersion, MAX_DEFINITION_NAME,
    check_definition_name,
};
pub use definition_store::DefinitionStore;
pub use health_store::HealthStore;
pub use job_store::{ALL_JOBS_PAGE, JobStore};
pub use key_store::KeyStore;
pub use model_day_store::ModelDayStore;
pub use open::{Location, db_migrate, db_status, open_store};
pub use result_store::ResultStore;
pub use run_index_store::RunIndexStore;
pub use run_store::{EventFilter, RunStore};
pub use schedule_store::ScheduleStore;
pub use sql::Backend;
pub use workflow_store::WorkflowStore;

pub use api_key::{ApiKey, NewApiKey, Role, SECRET_PREFIX, api_key_hash};
pub use error::StoreError;
pub use job::{Job, JobAction, JobControl, JobProgress, JobReport, JobStatus, NewJob, config_hash};
pub use migration::{MigrationInfo, MigrationState};
pub use model_day::{
    ClaimedCompletion, Holding, ModelDay, ModelDayKey, ModelDayMemory, ModelDayOutcome,
    ModelDayStatus, ModelDayStop, ReasoningMessage, ToolCall, Trade, TradeAction,
};
pub use postgres::PgStore;
pub use read_version::{EXTERNAL_CHECK_EVERY, ReadVersion};
pub use results::{
    DailyValue, LeaderboardEntry, MAX_PAGE, ModelDayResult, RATIO_DECIMALS, Ratio, ResultsFilter,
    ResultsPage,
};
pub use run_index::RunEntry;
pub use schedule_fire::ScheduleFire;
pub use scratch::{ScratchDatabase, with_database};
pub use sqlite::{BUSY_TIMEOUT, BUSY_TIMEOUT_ENV, ExclusiveLock, SqliteStore, busy_timeout};
pub use status_count::StatusCounts;
pub use store::Store;
pub use text::{api_keys_table, migrations_text};
pub use workflow::{Blob, NewWorkflowVersion, Workflow, WorkflowVersion, blob_hash};
pub use workflow_run::{
    Approval, ApprovalChange, ApprovalStatus, CreateRun, Decision, NewApproval, NewBlob, NewEvent,
    NewPatch, NewWorkflowRun, NodeChange, NodeState, NodeStatus, Patch, RunEvent, RunPriority,
    RunStatus, RunWrite, Transition, TransitionOutcome, WorkflowRun,
};
