//! The sandbox against real hostile scripts: each is stopped or refused with an error naming
//! the limit, and nothing outside its scratch folder is touched.
#![allow(clippy::unwrap_used)] // tests fail loudly on an unexpected error

mod skills;
