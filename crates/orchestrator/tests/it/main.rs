//! Integration tests of the workflow runtime over a real store (SQLite; PostgreSQL too when
//! `TRADELOOM_TEST_POSTGRES_URL` is set), the in-process queue, real HTTP on loopback for
//! `http` nodes and mock-llm for `agent` nodes.
#![allow(clippy::unwrap_used)]

mod agent_answers;
mod config_path;
mod harness;
mod kill_switch;
mod order_node;
mod paper_node;
mod patches;
mod recovery;
mod run_control;
mod runs;
mod scale;
mod script_node;
mod settlement;
mod skill_tools;
mod stale_plans;
mod supervision;
mod sweep_points;
