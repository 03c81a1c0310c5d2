//! agents: LLM trading agents for tradeloom — the tools a model trades with (prices, bars,
//! portfolio, orders, a safe calculator, news), the desk workflow nodes use them from, one
//! model-day session loop over any [`LlmProvider`], and simulation jobs that run many models
//! over many dates against the store, resumably. It does not know HTTP servers or the CLI: the
//! server and the binary build on it.
//!
//! [`LlmProvider`]: tradeloom_llm::LlmProvider

pub mod ai_trader;
mod book;
mod calc;
mod config;
mod config_dir;
mod desk;
mod error;
mod job_folder;
mod job_owner;
pub mod memory;
mod news_search;
pub mod openai_env;
mod order_gate;
mod schema;
mod session;
mod simulation;
mod skill_definition;
mod tools;

pub use book::{Book, BookError, Execution, Shortfall};
pub use calc::{CalcError, evaluate as calc_evaluate, format_result as calc_format};
pub use config::{
    MAX_SYSTEM_PROMPT, ModelConfig, ORDER_TOOLS, PathRef, ReferencePrice, ResolvedConfig,
    SESSION_TOOLS, SimulationConfig, config_from_value, initial_value, load_config, resolve_agents,
};
pub use config_dir::{ConfigDir, ConfigFile, ConfigPathError, MAX_CONFIG_BYTES};
pub use desk::{Market, OrderOutcome, Proposal, Side, execute_proposal};
pub use error::AgentError;
pub use job_folder::{job_dir, model_day_log, model_day_record, model_day_records};
pub use job_owner::{InterruptedJob, interrupt_orphaned_jobs, job_owner, owned_elsewhere};
pub use news_search::{NewsHit, search_config_news};
pub use order_gate::{KILL_SWITCH_CODE, OrderGate, day_refusal, is_refusal, refusal};
pub use schema::{SCHEMA_KEYWORDS, schema_problems, validate as validate_arguments};
pub use session::{
    LlmCall, SYSTEM_PROMPT, SessionExtras, SessionLimits, SessionReport, TRUNCATED_CODE,
    run_session, run_session_gated, session_prompt, system_prompt_for,
};
pub use simulation::{
    SimEvent, Simulator, SimulatorOptions, TriggerOutcome, job_run_dir, job_warnings,
    resume_to_end, run_to_end, tool_use_warnings,
};
pub use skill_definition::{MAX_SKILL_SOURCE, SkillDefinition};
pub use tools::{
    ALL_TOOL_NAMES, MAX_BARS, SessionView, TOOL_NAMES, ToolBox, ToolError, all_tool_specs,
    call_calc, session_clock, tool_spec, tool_specs,
};
