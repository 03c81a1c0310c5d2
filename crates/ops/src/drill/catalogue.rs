//! The drills: their names, what each injects and what it asserts.

use std::fmt;
use std::str::FromStr;

use serde::Serialize;

/// One drill of the catalogue; serialised (and parsed) as its snake_case name.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum DrillName {
    /// The global kill switch engaged while a backtest trades.
    KillSwitch,
    /// A feed named in `health.yaml` stops being updated.
    DataStall,
    /// `tradeloom serve` SIGKILLed with workflow runs in flight.
    WorkerCrash,
    /// The mock LLM of one model killed in the middle of a simulation job.
    LlmOutage,
    /// The SQLite store of a running serve held under an exclusive write lock.
    StoreUnavailable,
    /// A backtest whose output exceeds the file size limit.
    DiskFull,
}

impl DrillName {
    /// Every drill, in the order `tradeloom drill run --all` runs them.
    pub const ALL: [DrillName; 6] = [
        DrillName::KillSwitch,
        DrillName::DataStall,
        DrillName::WorkerCrash,
        DrillName::LlmOutage,
        DrillName::StoreUnavailable,
        DrillName::DiskFull,
    ];

    /// The name used on the command line and in `<data-dir>/drills/<name>.json`.
    pub fn as_str(self) -> &'static str {
        match self {
            DrillName::KillSwitch => "kill_switch",
            DrillName::DataStall => "data_stall",
            DrillName::WorkerCrash => "worker_crash",
            DrillName::LlmOutage => "llm_outage",
            DrillName::StoreUnavailable => "store_unavailable",
            DrillName::DiskFull => "disk_full",
        }
    }

    /// The fault the drill injects, in one line.
    pub fn injects(self) -> &'static str {
        match self {
            DrillName::KillSwitch => "engages the global kill switch while a backtest is trading",
            DrillName::DataStall => "stops updating a feed file named in health.yaml",
            DrillName::WorkerCrash => {
                "SIGKILLs tradeloom serve while workflow runs are in flight, then restarts it"
            }
            DrillName::LlmOutage => {
                "kills the mock-llm serving one model in the middle of a simulation job"
            }
            DrillName::StoreUnavailable => {
                "holds an exclusive write lock on the SQLite store of a running serve"
            }
            DrillName::DiskFull => {
                "runs a backtest with the file size limit (ulimit -f) below its output"
            }
        }
    }

    /// The operational response the drill asserts.
    pub fn asserts(self) -> &'static str {
        match self {
            DrillName::KillSwitch => {
                "no order accepted or filled after the engagement event, every later order \
                 refused with risk.kill_switch; after release a new run trades"
            }
            DrillName::DataStall => {
                "tradeloom health walks GREEN -> DEGRADED -> DEAD as the feed goes stale and \
                 dead, and back to GREEN when it resumes"
            }
            DrillName::WorkerCrash => {
                "every run completes after the restart and every node completes exactly once"
            }
            DrillName::LlmOutage => {
                "retries recorded, that model's later days fail naming the LLM endpoint, the job \
                 ends partial with no half-written model-day; after the LLM returns a \
                 re-trigger completes the failed days"
            }
            DrillName::StoreUnavailable => {
                "writes answer 503 store_unavailable promptly, reads are unchanged, nothing is \
                 half-written; writes succeed again once the lock is released"
            }
            DrillName::DiskFull => {
                "non-zero exit naming the file that could not be written, journal.jsonl holds \
                 only complete JSON lines, metadata.json says failed"
            }
        }
    }
}

/// A drill name that is not in the catalogue.
#[derive(Debug, thiserror::Error)]
#[error("unknown drill `{name}`; the drills are: {}", DrillName::ALL.map(|d| d.as_str()).join(", "))]
pub struct UnknownDrill {
    /// The name that was asked for.
    pub name: String,
}

impl fmt::Display for DrillName {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl FromStr for DrillName {
    type Err = UnknownDrill;

    fn from_str(name: &str) -> Result<Self, UnknownDrill> {
        DrillName::ALL
            .into_iter()
            .find(|d| d.as_str() == name)
            .ok_or_else(|| UnknownDrill {
                name: name.to_string(),
            })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_parse_back_and_serialise_as_themselves() {
        for drill in DrillName::ALL {
            assert_eq!(drill.as_str().parse::<DrillName>().unwrap(), drill);
            assert_eq!(
                serde_json::to_value(drill).unwrap(),
                serde_json::Value::from(drill.as_str())
            );
        }
    }

    #[test]
    fn an_unknown_name_lists_the_drills() {
        let err = "no_such_drill".parse::<DrillName>().unwrap_err();
        assert_eq!(
            err.to_string(),
            "unknown drill `no_such_drill`; the drills are: kill_switch, data_stall, \
             worker_crash, llm_outage, store_unavailable, disk_full"
        );
    }
}
