//! The job store a command opens (`--database-url`, else `<data-dir>/tradeloom.db`) and the
//! async runtime such commands run on.

use std::path::Path;
use std::sync::Arc;

use anyhow::{Context, Result};
use tradeloom_store::Store;

/// Where the store is: `--database-url`, else `<data_dir>/tradeloom.db`.
pub fn location(data_dir: &Path, database_url: Option<&str>) -> String {
    match database_url {
        Some(url) => url.to_string(),
        None => data_dir.join("tradeloom.db").display().to_string(),
    }
}

/// The multi-threaded tokio runtime of one command.
pub fn runtime() -> Result<tokio::runtime::Runtime> {
    tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .context("cannot start the async runtime")
}

/// Opens the store of [`location`]; the error names it without its password.
pub async fn open(data_dir: &Path, database_url: Option<&str>) -> Result<Arc<dyn Store>> {
    let location = location(data_dir, database_url);
    tradeloom_store::open_store(&location)
        .await
        .with_context(|| {
            format!(
                "cannot open the store at {}",
                tradeloom_core::redact_userinfo(&location)
            )
        })
}
