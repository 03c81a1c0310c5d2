//! The default model endpoint and key of the environment, as reference document 002 (AI-Trader)
//! names them: `OPENAI_API_BASE` is the endpoint of a model whose config gives no `base_url`,
//! and `OPENAI_API_KEY` is that endpoint's key.
//!
//! The key is read from the environment when a request is made and is never written anywhere:
//! a job's stored config names the variable (`api_key_env: OPENAI_API_KEY`), never its value.
//! It goes to the default endpoint only: a model that names its own `base_url` uses
//! `OPENAI_API_KEY` only if the operator allow-lists it like any other variable (`serve
//! --llm-key-env`), so an API caller cannot send the operator's key to an endpoint of its choice.

/// The variable naming the default endpoint.
pub const BASE_ENV: &str = "OPENAI_API_BASE";

/// The variable holding the default endpoint's key.
pub const KEY_ENV: &str = "OPENAI_API_KEY";

/// `OPENAI_API_BASE`, trimmed and without a trailing `/`, when set and not empty.
pub fn default_endpoint() -> Option<String> {
    std::env::var(BASE_ENV)
        .ok()
        .map(|v| v.trim().trim_end_matches('/').to_string())
        .filter(|v| !v.is_empty())
}

/// Whether `OPENAI_API_KEY` is set (its value is not looked at otherwise).
pub fn default_key_is_set() -> bool {
    std::env::var_os(KEY_ENV).is_some_and(|v| !v.is_empty())
}

/// Whether a model of `base_url` naming the key variable `var` uses the default endpoint's key:
/// `var` is `OPENAI_API_KEY` and `base_url` is `OPENAI_API_BASE`. Such a model needs no
/// allow-list entry.
pub fn is_default_key(var: &str, base_url: &str) -> bool {
    var == KEY_ENV
        && default_endpoint()
            .is_some_and(|endpoint| endpoint == base_url.trim().trim_end_matches('/'))
}

/// The default endpoint's key, when `is_default_key(var, base_url)`; `None` otherwise (the
/// caller reads `var` through the allow-list).
pub fn default_key(var: &str, base_url: &str) -> Option<String> {
    if !is_default_key(var, base_url) {
        return None;
    }
    std::env::var(KEY_ENV).ok().filter(|k| !k.is_empty())
}
