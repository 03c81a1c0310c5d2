//! [`Store`]: every resource store in one trait, what the worker, the REST API and the CLI hold
//! (`Arc<dyn Store>`). Each resource has its own trait and file; bring their methods into scope
//! with `use tradeloom_store::prelude::*;`.

use crate::admission_store::AdmissionStore;
use crate::approval_link_store::ApprovalLinkStore;
use crate::approval_store::ApprovalStore;
use crate::definition_store::DefinitionStore;
use crate::health_store::HealthStore;
use crate::job_store::JobStore;
use crate::key_store::KeyStore;
use crate::model_day_store::ModelDayStore;
use crate::result_store::ResultStore;
use crate::run_index_store::RunIndexStore;
use crate::run_store::RunStore;
use crate::schedule_store::ScheduleStore;
use crate::workflow_store::WorkflowStore;

/// Persistence of simulation jobs, workflows, runs, agents and skills: the union of the resource stores, over
/// SQLite ([`crate::SqliteStore`]) or PostgreSQL ([`crate::PgStore`]).
pub trait Store:
    HealthStore
    + JobStore
    + ModelDayStore
    + ResultStore
    + WorkflowStore
    + RunStore
    + AdmissionStore
    + ApprovalStore
    + ApprovalLinkStore
    + DefinitionStore
    + KeyStore
    + ScheduleStore
    + RunIndexStore
    + std::fmt::Debug
{
}

impl<T> Store for T where
    T: HealthStore
        + JobStore
        + ModelDayStore
        + ResultStore
        + WorkflowStore
        + RunStore
        + AdmissionStore
        + ApprovalStore
        + ApprovalLinkStore
        + DefinitionStore
        + KeyStore
        + ScheduleStore
        + RunIndexStore
        + std::fmt::Debug
{
}
