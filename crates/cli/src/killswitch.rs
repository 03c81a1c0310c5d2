//! `tradeloom killswitch engage|release|status`: the data dir's kill switch (crate
//! `tradeloom-safety`).

use std::path::Path;
use std::process::ExitCode;

use anyhow::{Context, Result};
use clap::{Args, Subcommand};
use tradeloom_safety::{KillSwitch, Scope, ScopeState};

/// Which kill switch: the global one unless `--run` or `--job` is given.
#[derive(Args)]
#[group(multiple = false)]
pub struct ScopeArgs {
    /// The kill switch of this run only.
    #[arg(long)]
    run: Option<String>,
    /// The kill switch of this simulation job only.
    #[arg(long)]
    job: Option<String>,
}

impl ScopeArgs {
    fn scope(&self) -> Result<Scope> {
        Ok(match (&self.run, &self.job) {
            (Some(id), _) => Scope::run(id)?,
            (None, Some(id)) => Scope::job(id)?,
            (None, None) => Scope::Global,
        })
    }
}

#[derive(Subcommand)]
pub enum KillSwitchCommand {
    /// Stop new orders: `tradeloom run` refuses every order while the global (or the run's)
    /// kill switch is engaged.
    Engage {
        /// Why (recorded in the state file, the event log and every refused order).
        #[arg(long)]
        reason: String,
        #[command(flatten)]
        scope: ScopeArgs,
        /// Ask trading paths to flatten positions as well (recorded in the state).
        #[arg(long)]
        flatten: bool,
        /// Who (default: $USER).
        #[arg(long)]
        by: Option<String>,
        #[arg(long)]
        json: bool,
    },
    /// Let orders through again.
    Release {
        /// Why (recorded in the state file and the event log).
        #[arg(long)]
        reason: String,
        #[command(flatten)]
        scope: ScopeArgs,
        /// Who (default: $USER).
        #[arg(long)]
        by: Option<String>,
        #[arg(long)]
        json: bool,
    },
    /// Every kill switch: `{"global": {...}, "runs": {...}, "jobs": {...}}` with `--json`.
    Status {
        #[arg(long)]
        json: bool,
    },
}

fn actor(by: Option<String>) -> String {
    by.filter(|b| !b.trim().is_empty())
        .or_else(|| std::env::var("USER").ok().filter(|u| !u.is_empty()))
        .unwrap_or_else(|| "unknown".to_string())
}

fn open(data_dir: &Path) -> Result<KillSwitch> {
    KillSwitch::open(data_dir)
        .with_context(|| format!("opening the kill switch of {}", data_dir.display()))
}

fn print_state(state: &ScopeState, json: bool) -> Result<()> {
    if json {
        println!("{}", serde_json::to_string(state)?);
    } else {
        println!("{}", state.summary());
    }
    Ok(())
}

pub fn run(data_dir: &Path, command: KillSwitchCommand) -> Result<ExitCode> {
    match command {
        KillSwitchCommand::Engage {
            reason,
            scope,
            flatten,
            by,
            json,
        } => {
            let ks = open(data_dir)?;
            let state = ks.engage(&scope.scope()?, &reason, &actor(by), flatten)?;
            print_state(&state, json)?;
        }
        KillSwitchCommand::Release {
            reason,
            scope,
            by,
            json,
        } => {
            let ks = open(data_dir)?;
            let state = ks.release(&scope.scope()?, &reason, &actor(by))?;
            print_state(&state, json)?;
        }
        KillSwitchCommand::Status { json } => {
            let status = open(data_dir)?.status()?;
            if json {
                println!("{}", serde_json::to_string(&status)?);
            } else {
                print!("{}", status.text());
            }
        }
    }
    Ok(ExitCode::SUCCESS)
}
