//! Integration tests of tradeloom-ops over real run folders (written by the real runner), real
//! simulation jobs (mock-llm over loopback HTTP) and real SQLite/PostgreSQL stores.
#![allow(clippy::unwrap_used)] // tests fail loudly on an unexpected error

mod health;
mod paper;
mod reconcile;
