//! Integration tests of the data loaders, one binary.
#![allow(clippy::unwrap_used)] // tests fail loudly on an unexpected error

mod loaders;
mod news;
mod universe;
