//! A job's market (universe, news, trading dates) and its models' providers.

use std::sync::Arc;
use std::time::Duration;

use chrono::NaiveDate;

use tradeloom_data::{NewsCorpus, Universe};
use tradeloom_llm::{LlmProvider, OpenAiProvider, ProviderConfig};
use tradeloom_net::Outbound;

use crate::config::ResolvedConfig;
use crate::error::AgentError;

/// The universe and news of a job, loaded once per run.
pub(super) struct Market {
    pub(super) universe: Universe,
    pub(super) news: NewsCorpus,
    pub(super) dates: Vec<NaiveDate>,
}

/// Loads the universe (restricted to the config's symbols) and news, and the trading dates in
/// the config's range.
pub(super) fn load_market(config: &ResolvedConfig) -> Result<Market, AgentError> {
    let mut universe = Universe::load(&config.universe_dir)?;
    if let Some(symbols) = &config.config.symbols {
        universe = universe.restrict(symbols)?;
    }
    let news = match &config.news_path {
        Some(path) => NewsCorpus::load(path)?,
        None => NewsCorpus::empty(),
    };
    let (start, end) = (config.config.start_date, config.config.end_date);
    let dates: Vec<NaiveDate> = universe
        .trading_dates()
        .into_iter()
        .filter(|d| *d >= start && *d <= end)
        .collect();
    if dates.is_empty() {
        return Err(AgentError::Config {
            place: "config: start_date".into(),
            message: format!(
                "no trading days between {start} and {end} in the universe at {} (it covers {} to {})",
                config.universe_dir.display(),
                universe
                    .first_date()
                    .map_or_else(|| "nothing".into(), |d| d.to_string()),
                universe
                    .last_date()
                    .map_or_else(|| "nothing".into(), |d| d.to_string()),
            ),
        });
    }
    Ok(Market {
        universe,
        news,
        dates,
    })
}

/// The provider of one model, sending through the guarded client; the API key comes from the
/// named environment variable, if the allow-list has it.
pub(super) fn provider_for(
    config: &ResolvedConfig,
    model: &str,
    outbound: &Outbound,
) -> Result<Arc<dyn LlmProvider>, ProviderError> {
    let m = config
        .model(model)
        .ok_or_else(|| ProviderError::NotInConfig(model.to_string()))?;
    let mut settings = ProviderConfig::new(m.base_url.clone(), m.model.clone());
    if let Some(var) = &m.api_key_env {
        let key = match crate::openai_env::default_key(var, &m.base_url) {
            Some(key) => key,
            None => outbound.secrets.read(var).map_err(|e| ProviderError::Key {
                model: model.to_string(),
                message: e.to_string(),
            })?,
        };
        settings.api_key = Some(key);
    }
    if let Some(ms) = m.backoff_ms {
        settings.backoff_base = Duration::from_millis(ms);
    }
    settings.temperature = m.temperature;
    settings.max_tokens = m.max_tokens;
    if let Some(ms) = m.timeout_ms {
        settings.timeout = Duration::from_millis(ms);
    }
    if let Some(n) = m.max_retries {
        settings.max_retries = n;
    }
    if let Some(choice) = m.tool_choice {
        settings.tool_choice = choice;
    }
    OpenAiProvider::new(settings, &outbound.http)
        .map(|p| Arc::new(p) as Arc<dyn LlmProvider>)
        .map_err(|e| ProviderError::Client(e.to_string()))
}

/// Why a model of a job has no provider: its model-days fail with this text.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub(super) enum ProviderError {
    #[error("model `{0}` is not in the job's config")]
    NotInConfig(String),
    /// A model-day of a model the job's config does not list.
    #[error("unknown model `{0}`")]
    Unknown(String),
    /// The API key variable cannot be read (not allowed, or not set).
    #[error("api_key_env of model `{model}`: {message}")]
    Key { model: String, message: String },
    /// The client cannot be built from the model's settings.
    #[error("{0}")]
    Client(String),
}
