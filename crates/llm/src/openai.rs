//! [`OpenAiProvider`]: the [`LlmProvider`] over an OpenAI-compatible `/chat/completions`
//! endpoint (OpenAI, llama.cpp, vLLM, Ollama, the `mock-llm` server), with per-attempt
//! timeouts and retries with back-off.

use std::fmt;
use std::sync::Once;
use std::time::{Duration, Instant, SystemTime};

use async_trait::async_trait;
use reqwest::header::{
    AUTHORIZATION, CONTENT_TYPE, HeaderMap, HeaderValue, RETRY_AFTER, USER_AGENT,
};
use reqwest::{Method, StatusCode, Url};
use tradeloom_net::{GuardedClient, SsrfError, SsrfErrorKind};

use crate::backoff::{Backoff, parse_retry_after};
use crate::call_metrics;
use crate::provider::{LlmError, LlmProvider};
use crate::types::ToolChoice;
use crate::types::{ChatRequest, ChatResponse, Role};
use crate::wire::{RequestBody, ResponseBody};

/// Error bodies quoted in [`LlmError`] are cut to this many characters.
const MAX_ERROR_BODY_CHARS: usize = 500;

/// Installs rustls' `ring` crypto provider as the process default, once. reqwest is built
/// without a provider of its own (so that only `ring` is compiled) and panics when it builds a
/// client and none is installed. Calling this again, or after someone else installed a
/// provider, does nothing. [`OpenAiProvider::new`] calls it.
pub fn install_crypto_provider() {
    static INSTALL: Once = Once::new();
    INSTALL.call_once(|| {
        // Err means another provider is already the default: that one is used, which is fine.
        let _ = rustls::crypto::ring::default_provider().install_default();
    });
}

/// Where and how to reach an OpenAI-compatible chat-completions API.
///
/// `Debug` shows whether an API key is set, never the key.
#[derive(Clone)]
pub struct ProviderConfig {
    /// API root, e.g. `https://api.openai.com/v1` or `http://127.0.0.1:8089/v1`; requests go to
    /// `{base_url}/chat/completions`. Must be `http` or `https`.
    pub base_url: String,
    /// Model name sent with each request (for the mock server: the policy).
    pub model: String,
    /// Sent as `Authorization: Bearer <key>`; never logged nor quoted in errors.
    pub api_key: Option<String>,
    /// Sampling temperature; omitted from the request when `None`.
    pub temperature: Option<f64>,
    /// Completion token limit; omitted from the request when `None`.
    pub max_tokens: Option<u32>,
    /// Limit of one attempt, from sending the request to the end of the response body.
    /// Default [`ProviderConfig::default_timeout`] of the endpoint: 60 s, or 300 s for a
    /// model served on this machine or the local network.
    pub timeout: Duration,
    /// Retries after the first attempt for retryable failures (429, 408, 5xx other than 501
    /// and 505, timeouts, connection errors). Default 4, so at most 5 attempts.
    pub max_retries: u32,
    /// First back-off ceiling; attempt `n` waits a random time in
    /// `[0, min(backoff_max, backoff_base × 2^(n-1))]`. Default 500 ms.
    pub backoff_base: Duration,
    /// Cap of the back-off and of a server's `Retry-After`. Default 20 s.
    pub backoff_max: Duration,
    /// `tool_choice` of requests that offer tools. Default `auto`.
    pub tool_choice: ToolChoice,
}

impl ProviderConfig {
    pub const DEFAULT_TIMEOUT: Duration = Duration::from_secs(60);
    /// The default timeout of an endpoint on loopback or a private address: such models are
    /// often served from a CPU (llama.cpp on two cores took 10–33 s for a first call of
    /// ~1,000 prompt tokens, and prompts grow with each step).
    pub const DEFAULT_LOCAL_TIMEOUT: Duration = Duration::from_secs(300);
    pub const DEFAULT_MAX_RETRIES: u32 = 4;
    pub const DEFAULT_BACKOFF_BASE: Duration = Duration::from_millis(500);
    pub const DEFAULT_BACKOFF_MAX: Duration = Duration::from_secs(20);

    /// A configuration with no API key, the server's default sampling and the default timeout,
    /// retries and back-off.
    pub fn new(base_url: impl Into<String>, model: impl Into<String>) -> Self {
        let base_url = base_url.into();
        ProviderConfig {
            timeout: Self::default_timeout(&base_url),
            base_url,
            model: model.into(),
            api_key: None,
            temperature: None,
            max_tokens: None,
            max_retries: Self::DEFAULT_MAX_RETRIES,
            backoff_base: Self::DEFAULT_BACKOFF_BASE,
            backoff_max: Self::DEFAULT_BACKOFF_MAX,
            tool_choice: ToolChoice::Auto,
        }
    }
}

impl ProviderConfig {
    /// The timeout an endpoint gets unless configured: [`Self::DEFAULT_LOCAL_TIMEOUT`] when its
    /// host is `localhost`, a loopback or a private (RFC 1918, unique-local) address, or ends in
    /// `.local`; [`Self::DEFAULT_TIMEOUT`] otherwise.
    pub fn default_timeout(base_url: &str) -> Duration {
        let local = reqwest::Url::parse(base_url.trim())
            .ok()
            .and_then(|u| u.host_str().map(str::to_ascii_lowercase))
            .is_some_and(|host| {
                let host = host.trim_start_matches('[').trim_end_matches(']');
                match host.parse::<std::net::IpAddr>() {
                    Ok(std::net::IpAddr::V4(ip)) => ip.is_loopback() || ip.is_private(),
                    Ok(std::net::IpAddr::V6(ip)) => {
                        ip.is_loopback() || (ip.segments()[0] & 0xfe00) == 0xfc00
                    }
                    Err(_) => {
                        host == "localhost"
                            || host.ends_with(".localhost")
                            || host.ends_with(".local")
                    }
                }
            });
        if local {
            Self::DEFAULT_LOCAL_TIMEOUT
        } else {
            Self::DEFAULT_TIMEOUT
        }
    }
}

impl fmt::Debug for ProviderConfig {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ProviderConfig")
            .field("base_url", &redact_url(&self.base_url))
            .field("model", &self.model)
            .field("api_key", &self.api_key.as_ref().map(|_| "<redacted>"))
            .field("temperature", &self.temperature)
            .field("max_tokens", &self.max_tokens)
            .field("timeout", &self.timeout)
            .field("max_retries", &self.max_retries)
            .field("backoff_base", &self.backoff_base)
            .field("backoff_max", &self.backoff_max)
            .field("tool_choice", &self.tool_choice)
            .finish()
    }
}

/// An [`LlmProvider`] speaking the OpenAI chat-completions API over HTTP(S), through the SSRF
/// guard's client: the endpoint (and every redirect) must pass the guard's policy, as every
/// outbound request of tradeloom must.
#[derive(Debug)]
pub struct OpenAiProvider {
    config: ProviderConfig,
    /// The guarded client, its exchange limit set to the attempt timeout.
    http: GuardedClient,
    endpoint: Url,
    /// `endpoint` without credentials or query, for errors and logs.
    shown_endpoint: String,
    headers: HeaderMap,
    backoff: Backoff,
}

impl OpenAiProvider {
    /// A provider sending through `http` (whose policy decides which endpoints it may reach).
    /// Installs the TLS crypto provider if needed.
    ///
    /// Fails with [`LlmError::Config`] when `base_url` is not an `http`/`https` URL or the API
    /// key cannot be sent as a header. The guard is applied when a request is sent (a refusal
    /// is [`LlmError::Refused`]); [`GuardedClient::check`] refuses a configuration earlier.
    pub fn new(config: ProviderConfig, http: &GuardedClient) -> Result<Self, LlmError> {
        install_crypto_provider();
        let endpoint = chat_completions_url(&config.base_url)?;
        let shown_endpoint = redact_url(endpoint.as_str());
        let mut headers = HeaderMap::new();
        headers.insert(CONTENT_TYPE, HeaderValue::from_static("application/json"));
        headers.insert(
            USER_AGENT,
            HeaderValue::from_static(concat!("tradeloom-llm/", env!("CARGO_PKG_VERSION"))),
        );
        if let Some(key) = &config.api_key {
            let mut value = HeaderValue::from_str(&format!("Bearer {key}")).map_err(|_| {
                LlmError::Config(
                    "the API key contains characters not allowed in an HTTP header".to_owned(),
                )
            })?;
            value.set_sensitive(true);
            headers.insert(AUTHORIZATION, value);
        }
        let backoff = Backoff::new(config.backoff_base, config.backoff_max);
        Ok(OpenAiProvider {
            http: http.with_timeout(config.timeout),
            config,
            endpoint,
            shown_endpoint,
            headers,
            backoff,
        })
    }

    pub fn config(&self) -> &ProviderConfig {
        &self.config
    }

    /// The full URL requests are posted to.
    pub fn endpoint(&self) -> &str {
        self.endpoint.as_str()
    }

    /// One HTTP attempt: send, read the whole body within the timeout, decode.
    async fn attempt(&self, body: &[u8]) -> Result<ChatResponse, Failure> {
        let response = self
            .http
            .send(
                Method::POST,
                self.endpoint.as_str(),
                self.headers.clone(),
                Some(body.to_vec()),
            )
            .await
            .map_err(|error| self.transport_failure(error))?;
        let status = response.status;
        let retry_after = response
            .headers
            .get(RETRY_AFTER)
            .and_then(|value| value.to_str().ok())
            .and_then(|value| parse_retry_after(value, SystemTime::now()));
        let bytes = response.body;
        if !status.is_success() {
            let error = LlmError::Http {
                status: status.as_u16(),
                url: self.shown_endpoint.clone(),
                body: truncate(&String::from_utf8_lossy(&bytes), MAX_ERROR_BODY_CHARS),
            };
            return Err(if is_retryable_status(status) {
                let honours_retry_after = matches!(
                    status,
                    StatusCode::TOO_MANY_REQUESTS | StatusCode::SERVICE_UNAVAILABLE
                );
                Failure {
                    error,
                    retryable: true,
                    retry_after: retry_after.filter(|_| honours_retry_after),
                }
            } else {
                Failure::fatal(error)
            });
        }
        self.decode(&bytes).map_err(Failure::fatal)
    }

    /// What a failed exchange means for the call: the guard's refusals and oversized or
    /// misdirected answers are final, timeouts and connection failures may pass.
    fn transport_failure(&self, error: SsrfError) -> Failure {
        let url = self.shown_endpoint.clone();
        if error.is_refusal() {
            let redirected = error
                .redirected_from
                .as_ref()
                .map(|_| format!(" (redirected to {})", error.url))
                .unwrap_or_default();
            return Failure::fatal(LlmError::Refused {
                url,
                message: format!("{}{redirected}", error.kind),
            });
        }
        match error.kind {
            SsrfErrorKind::Timeout { .. } => Failure::retryable(self.timeout_error()),
            SsrfErrorKind::Http(message) => {
                Failure::retryable(LlmError::Transport { url, message })
            }
            kind @ SsrfErrorKind::TooLarge { .. } => Failure::fatal(LlmError::Decode {
                url,
                message: kind.to_string(),
            }),
            kind => Failure::fatal(LlmError::Transport {
                url,
                message: kind.to_string(),
            }),
        }
    }

    fn decode(&self, bytes: &[u8]) -> Result<ChatResponse, LlmError> {
        let decode_error = |message: String| LlmError::Decode {
            url: self.shown_endpoint.clone(),
            message,
        };
        let body: ResponseBody = serde_json::from_slice(bytes).map_err(|error| {
            decode_error(format!(
                "not a chat-completions JSON body ({error}): {}",
                truncate(&String::from_utf8_lossy(bytes), MAX_ERROR_BODY_CHARS)
            ))
        })?;
        let usage = body.usage.into();
        let Some(choice) = body.choices.into_iter().next() else {
            let detail = body
                .error
                .map(|error| {
                    format!(
                        "; error: {}",
                        truncate(&error.to_string(), MAX_ERROR_BODY_CHARS)
                    )
                })
                .unwrap_or_default();
            return Err(decode_error(format!("the response has no choices{detail}")));
        };
        let Some(message) = choice.message else {
            return Err(decode_error("the first choice has no message".to_owned()));
        };
        let mut message = message.into_message(Role::Assistant);
        message.role = Role::Assistant;
        Ok(ChatResponse {
            message,
            finish_reason: choice.finish_reason,
            usage,
            latency: Duration::ZERO,
            attempts: 0,
        })
    }

    fn timeout_error(&self) -> LlmError {
        LlmError::Timeout {
            url: self.shown_endpoint.clone(),
            timeout_ms: u64::try_from(self.config.timeout.as_millis()).unwrap_or(u64::MAX),
        }
    }
}

#[async_trait]
impl LlmProvider for OpenAiProvider {
    fn model(&self) -> &str {
        &self.config.model
    }

    async fn chat(&self, request: &ChatRequest) -> Result<ChatResponse, LlmError> {
        let started = Instant::now();
        let body = RequestBody::new(
            &self.config.model,
            request,
            self.config.temperature,
            self.config.max_tokens,
            self.config.tool_choice,
        );
        let body = serde_json::to_vec(&body)
            .map_err(|error| LlmError::Config(format!("cannot encode the request: {error}")))?;
        let mut attempts = 0u32;
        loop {
            attempts += 1;
            let attempt_started = Instant::now();
            let outcome = self.attempt(&body).await;
            let attempt_ms = attempt_started.elapsed().as_millis();
            match outcome {
                Ok(mut response) => {
                    tracing::debug!(
                        url = %self.shown_endpoint,
                        model = %self.config.model,
                        attempt = attempts,
                        latency_ms = attempt_ms,
                        prompt_tokens = response.usage.prompt_tokens,
                        completion_tokens = response.usage.completion_tokens,
                        "chat completion"
                    );
                    response.attempts = attempts;
                    response.latency = started.elapsed();
                    call_metrics::record(
                        &self.config.model,
                        Ok(&response.usage),
                        attempts,
                        response.latency,
                    );
                    return Ok(response);
                }
                Err(failure) => {
                    tracing::debug!(
                        url = %self.shown_endpoint,
                        model = %self.config.model,
                        attempt = attempts,
                        latency_ms = attempt_ms,
                        retryable = failure.retryable,
                        error = %failure.error,
                        "chat completion attempt failed"
                    );
                    if !failure.retryable || attempts > self.config.max_retries {
                        let error = if failure.retryable && attempts > 1 {
                            LlmError::RetriesExhausted {
                                attempts,
                                last: Box::new(failure.error),
                            }
                        } else {
                            failure.error
                        };
                        call_metrics::record(
                            &self.config.model,
                            Err(&error),
                            attempts,
                            started.elapsed(),
                        );
                        return Err(error);
                    }
                    let wait = match failure.retry_after {
                        Some(requested) => self.backoff.capped(requested),
                        None => self.backoff.delay(attempts),
                    };
                    tokio::time::sleep(wait).await;
                }
            }
        }
    }
}

/// A failed attempt and whether another may succeed.
#[derive(Debug)]
struct Failure {
    error: LlmError,
    retryable: bool,
    /// The server's `Retry-After`, where honoured (429 and 503).
    retry_after: Option<Duration>,
}

impl Failure {
    fn retryable(error: LlmError) -> Self {
        Failure {
            error,
            retryable: true,
            retry_after: None,
        }
    }

    fn fatal(error: LlmError) -> Self {
        Failure {
            error,
            retryable: false,
            retry_after: None,
        }
    }
}

/// 429, 408 and server errors may pass; 501 and 505 and other client errors will not.
fn is_retryable_status(status: StatusCode) -> bool {
    status == StatusCode::TOO_MANY_REQUESTS
        || status == StatusCode::REQUEST_TIMEOUT
        || (status.is_server_error()
            && status != StatusCode::NOT_IMPLEMENTED
            && status != StatusCode::HTTP_VERSION_NOT_SUPPORTED)
}

fn chat_completions_url(base_url: &str) -> Result<Url, LlmError> {
    let base_url = base_url.trim();
    let shown = redact_url(base_url);
    if !base_url.contains("://") {
        return Err(LlmError::Config(format!(
            "base URL `{shown}` has no scheme; expected `http://` or `https://`, e.g. `http://127.0.0.1:8089/v1`"
        )));
    }
    let mut url = Url::parse(base_url).map_err(|error| {
        LlmError::Config(format!(
            "base URL `{shown}` is not a valid URL ({error}); expected e.g. `http://127.0.0.1:8089/v1`"
        ))
    })?;
    if !matches!(url.scheme(), "http" | "https") {
        return Err(LlmError::Config(format!(
            "base URL `{shown}` has scheme `{}`; expected `http` or `https`",
            url.scheme()
        )));
    }
    if url.host_str().is_none_or(str::is_empty) {
        return Err(LlmError::Config(format!("base URL `{shown}` has no host")));
    }
    if url.query().is_some() || url.fragment().is_some() {
        return Err(LlmError::Config(format!(
            "base URL `{shown}` has a query or fragment; give the API root only, e.g. `https://host/v1`"
        )));
    }
    let path = format!("{}/chat/completions", url.path().trim_end_matches('/'));
    url.set_path(&path);
    Ok(url)
}

/// `url` without user info, query or fragment, which may carry secrets.
fn redact_url(url: &str) -> String {
    match Url::parse(url.trim()) {
        Ok(mut parsed) => {
            if !parsed.username().is_empty() || parsed.password().is_some() {
                // Only fails for URLs that cannot have credentials, which then have none.
                let _ = parsed.set_username("");
                let _ = parsed.set_password(None);
            }
            parsed.set_query(None);
            parsed.set_fragment(None);
            parsed.to_string()
        }
        // Shown as given unless it might hold credentials or a query.
        Err(_) if !url.contains(['@', '?']) => url.trim().chars().take(200).collect(),
        Err(_) => "<unparsable URL>".to_owned(),
    }
}

fn truncate(text: &str, max_chars: usize) -> String {
    match text.char_indices().nth(max_chars) {
        Some((cut, _)) => format!("{}… ({} bytes in all)", &text[..cut], text.len()),
        None => text.to_owned(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn endpoint_handles_trailing_slashes() {
        for base in [
            "http://127.0.0.1:8089/v1",
            "http://127.0.0.1:8089/v1/",
            " http://127.0.0.1:8089/v1// ",
        ] {
            assert_eq!(
                chat_completions_url(base).unwrap().as_str(),
                "http://127.0.0.1:8089/v1/chat/completions"
            );
        }
    }

    #[test]
    fn local_endpoints_get_the_cpu_model_timeout() {
        for local in [
            "http://127.0.0.1:8080/v1",
            "http://localhost:8080/v1",
            "http://[::1]:8080/v1",
            "http://192.168.1.20:8080/v1",
            "http://10.0.0.5/v1",
            "http://gpu-box.local:8080/v1",
        ] {
            assert_eq!(
                ProviderConfig::new(local, "m").timeout,
                ProviderConfig::DEFAULT_LOCAL_TIMEOUT,
                "{local}"
            );
        }
        for remote in [
            "https://api.openai.com/v1",
            "http://8.8.8.8/v1",
            "http://localhost.example.com/v1",
            "not a url",
        ] {
            assert_eq!(
                ProviderConfig::new(remote, "m").timeout,
                ProviderConfig::DEFAULT_TIMEOUT,
                "{remote}"
            );
        }
    }

    #[test]
    fn endpoint_rejects_other_schemes_and_garbage() {
        for (base, expected) in [
            ("ftp://host/v1", "scheme `ftp`"),
            ("127.0.0.1:8089/v1", "`127.0.0.1:8089/v1` has no scheme"),
            ("http://", "not a valid URL"),
            ("not a url", "has no scheme"),
            ("https://host/v1?key=secret", "query or fragment"),
        ] {
            let error = chat_completions_url(base).unwrap_err().to_string();
            assert!(error.contains(expected), "{base}: {error}");
            assert!(!error.contains("secret"), "{error}");
        }
    }

    #[test]
    fn secrets_stay_out_of_debug_and_urls() {
        let mut config = ProviderConfig::new("https://user:pw@host/v1", "m");
        config.api_key = Some("sk-very-secret".into());
        let provider = OpenAiProvider::new(config, &GuardedClient::strict()).unwrap();
        let shown = format!("{provider:?}");
        assert!(!shown.contains("sk-very-secret"), "{shown}");
        assert!(!shown.contains("pw@"), "{shown}");
        assert_eq!(provider.shown_endpoint, "https://host/v1/chat/completions");
    }

    #[test]
    fn defaults() {
        let config = ProviderConfig::new("http://h/v1", "m");
        assert_eq!(config.timeout, Duration::from_secs(60));
        assert_eq!(config.max_retries, 4);
        assert_eq!(config.backoff_base, Duration::from_millis(500));
        assert_eq!(config.backoff_max, Duration::from_secs(20));
    }

    #[test]
    fn retryable_statuses() {
        for code in [429, 408, 500, 502, 503, 504, 529] {
            assert!(
                is_retryable_status(StatusCode::from_u16(code).unwrap()),
                "{code}"
            );
        }
        for code in [400, 401, 403, 404, 422, 501, 505] {
            assert!(
                !is_retryable_status(StatusCode::from_u16(code).unwrap()),
                "{code}"
            );
        }
    }

    #[test]
    fn truncation_respects_char_boundaries() {
        assert_eq!(truncate("abc", 5), "abc");
        let long = "é".repeat(600);
        let cut = truncate(&long, 500);
        assert!(cut.starts_with(&"é".repeat(500)));
        assert!(cut.ends_with("(1200 bytes in all)"));
    }
}
