//! The news corpus of a simulation config searched as its models' `search_news` tool searches
//! it (for `GET /news`): nothing published after the cut-off is ever returned.

use chrono::{DateTime, Utc};
use serde::Serialize;
use tradeloom_data::NewsCorpus;

use crate::config::ResolvedConfig;
use crate::error::AgentError;

/// One news item found.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct NewsHit {
    /// Publication time, RFC 3339 UTC.
    pub timestamp: String,
    pub symbols: Vec<String>,
    pub headline: String,
    pub body: String,
}

/// At most `limit` items of `config`'s news corpus published at or before `as_of` that match
/// `query` (best matches first, then newest; a blank query gives the newest), about `symbol`
/// when given. `Ok(None)` when the config has no news corpus. Reads the file: call it off the
/// async threads.
pub fn search_config_news(
    config: &ResolvedConfig,
    query: &str,
    symbol: Option<&str>,
    limit: usize,
    as_of: DateTime<Utc>,
) -> Result<Option<Vec<NewsHit>>, AgentError> {
    let Some(path) = &config.news_path else {
        return Ok(None);
    };
    let corpus = NewsCorpus::load(path)?;
    let hits = corpus
        .search(query, usize::MAX, as_of)
        .into_iter()
        .filter(|item| {
            symbol.is_none_or(|s| item.symbols.iter().any(|x| x.eq_ignore_ascii_case(s)))
        })
        .take(limit)
        .map(|item| NewsHit {
            timestamp: item
                .timestamp
                .to_rfc3339_opts(chrono::SecondsFormat::Secs, true),
            symbols: item.symbols.clone(),
            headline: item.headline.clone(),
            body: item.body.clone(),
        })
        .collect();
    Ok(Some(hits))
}
