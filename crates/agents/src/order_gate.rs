//! [`OrderGate`]: the data dir's kill switch in front of every `buy`/`sell` an agent places.
//!
//! Each order looks at the kill switch files right then (never a cached answer), so once
//! `tradeloom killswitch engage` (or `POST /killswitch/engage`) has returned, no agent order
//! is executed. A refused order changes nothing in the book; the tool answers the model with an
//! error that starts with [`KILL_SWITCH_CODE`] and names the scope and the reason, and the tool
//! call log keeps it.

use std::path::Path;
use std::sync::Arc;

use tradeloom_safety::{Engagement, KillSwitch, KillSwitchError};

/// The code at the start of every refusal (the same as the engine's journal code).
pub const KILL_SWITCH_CODE: &str = "risk.kill_switch";

/// The kill switches covering one job's orders: the global one, `job:<id>`, and the
/// `run:<id>` of runs that started the job (a workflow run).
#[derive(Clone, Debug)]
pub struct OrderGate {
    kill_switch: Arc<KillSwitch>,
    job_id: Option<String>,
    runs: Vec<String>,
}

impl OrderGate {
    /// The gate of `data_dir`'s kill switch for job `job_id` (and the runs `runs`).
    pub fn open(
        data_dir: &Path,
        job_id: Option<String>,
        runs: Vec<String>,
    ) -> Result<Self, KillSwitchError> {
        Ok(Self {
            kill_switch: Arc::new(KillSwitch::open(data_dir)?),
            job_id,
            runs,
        })
    }

    /// The engaged kill switch covering these orders, read from the files now.
    pub fn engaged_now(&self) -> Option<Engagement> {
        let runs: Vec<&str> = self.runs.iter().map(String::as_str).collect();
        self.kill_switch.engaged_now(&runs, self.job_id.as_deref())
    }
}

/// The text a refused order answers with: `risk.kill_switch: <scope> kill switch engaged by
/// <who> at <when>: <reason>`.
pub fn refusal(engagement: &Engagement) -> String {
    format!(
        "{KILL_SWITCH_CODE}: order refused: {}",
        engagement.describe()
    )
}

/// Why a whole model-day was refused: `risk.kill_switch: model-day not traded: <scope> kill
/// switch engaged by <who> at <when>: <reason>`.
pub fn day_refusal(engagement: &Engagement) -> String {
    format!(
        "{KILL_SWITCH_CODE}: model-day not traded: {}; it runs when the job is triggered again after release",
        engagement.describe()
    )
}

/// Whether a tool error is a kill switch refusal (not the model's mistake).
pub fn is_refusal(error: &str) -> bool {
    error.starts_with(KILL_SWITCH_CODE)
}
