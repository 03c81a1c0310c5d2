//! Client commands of a running `tradeloom serve`: `flow submit|status|patch|cancel|runs`,
//! `approve`, `reject` and `approvals`. They talk to the REST API only (never to the store), so
//! they work against a server on another machine.
//!
//! Exit codes: 0 success (a followed run completed); 1 an API or connection error, or a followed
//! run that failed or was cancelled; 2 bad input found before any request (a definition that
//! does not compile, a malformed `--input`) or a rejected patch; 3 a followed run is waiting for
//! approval; 4 following timed out.

use std::fmt;
use std::io::Read;
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::time::{Duration, Instant};

use anyhow::{Context, Result, bail};
use clap::Args;
use reqwest::{Method, StatusCode, Url};
use serde_json::{Map, Value, json};
use tradeloom_flow::{FlowError, compile, parse_definition};

use crate::table;

/// The default `--api`.
const DEFAULT_API: &str = "http://127.0.0.1:8080";
/// How often a followed run is polled.
const POLL: Duration = Duration::from_millis(150);
/// Events asked for per request while following.
const EVENT_PAGE: usize = 1000;

const EXIT_FAILED: u8 = 1;
const EXIT_BAD_INPUT: u8 = 2;
const EXIT_WAITING: u8 = 3;
const EXIT_TIMED_OUT: u8 = 4;

/// Where the API is and how to authenticate (every client command).
#[derive(Args, Clone)]
pub struct ApiOptions {
    /// Base URL of the tradeloom API (`tradeloom serve`).
    #[arg(long = "api", global = true, env = "TRADELOOM_API_URL", default_value = DEFAULT_API)]
    pub url: String,
    /// API key, sent as `Authorization: Bearer KEY` (never printed).
    #[arg(
        long = "api-key",
        global = true,
        env = "TRADELOOM_API_KEY",
        hide_env_values = true
    )]
    pub key: Option<String>,
}

/// `tradeloom flow submit`.
#[derive(Args)]
pub struct SubmitArgs {
    /// The workflow definition (YAML or JSON).
    pub file: PathBuf,
    /// A run input `NAME=VALUE` (repeatable); VALUE is read as JSON when it is valid JSON
    /// (`5`, `true`, `[1,2]`, `"quoted"`), else as a string.
    #[arg(long = "input", value_name = "NAME=VALUE")]
    pub inputs: Vec<String>,
    /// Run inputs as one JSON object (`--input` values override its keys).
    #[arg(long = "inputs-json", value_name = "JSON")]
    pub inputs_json: Option<String>,
    /// Follow the run: print each node transition, stop when it finishes (exit 0 completed,
    /// 1 failed or cancelled) or waits for approval (exit 3).
    #[arg(long)]
    pub wait: bool,
    /// With `--wait`: give up after this many seconds (exit 4).
    #[arg(long, value_name = "SECS", requires = "wait")]
    pub timeout: Option<f64>,
    /// Print JSON instead of text (with `--wait`, only the final run).
    #[arg(long)]
    pub json: bool,
}

/// `tradeloom flow status`.
#[derive(Args)]
pub struct StatusArgs {
    /// Workflow run id, a unique prefix of one, or `latest`.
    pub run_id: String,
    /// Follow the run like `flow submit --wait` (exit 0 completed, 1 failed or cancelled,
    /// 3 waiting for approval, 4 timed out).
    #[arg(long)]
    pub watch: bool,
    /// With `--watch`: give up after this many seconds (exit 4).
    #[arg(long, value_name = "SECS", requires = "watch")]
    pub timeout: Option<f64>,
    #[arg(long)]
    pub json: bool,
}

/// `tradeloom flow patch`.
#[derive(Args)]
pub struct PatchArgs {
    /// Workflow run id, a unique prefix of one, or `latest`.
    pub run_id: String,
    /// A JSON (or YAML) array of RFC 6902 operations on the run's definition; `-` reads stdin.
    pub patch_file: PathBuf,
    #[arg(long)]
    pub json: bool,
}

/// `tradeloom flow cancel`.
#[derive(Args)]
pub struct CancelArgs {
    /// Workflow run id, a unique prefix of one, or `latest`.
    pub run_id: String,
    /// Why (recorded with the cancellation).
    #[arg(long)]
    pub reason: Option<String>,
    #[arg(long)]
    pub json: bool,
}

/// `tradeloom flow runs`.
#[derive(Args)]
pub struct RunsArgs {
    /// Only runs in this status: pending, running, waiting, completed, failed, cancelled.
    #[arg(long)]
    pub status: Option<String>,
    #[arg(long, default_value_t = 50)]
    pub limit: u32,
    #[arg(long)]
    pub json: bool,
}

/// `tradeloom approve` and `tradeloom reject`.
#[derive(Args)]
pub struct DecideArgs {
    /// The approval id (printed by `flow submit --wait`, `flow status`, `approvals`), a unique
    /// prefix of one, or `latest`.
    pub id: String,
    #[arg(long)]
    pub comment: Option<String>,
    /// Who decides (default: the API key's name, or `anonymous`).
    #[arg(long)]
    pub by: Option<String>,
    #[arg(long)]
    pub json: bool,
}

/// `tradeloom approvals`.
#[derive(Args)]
pub struct ApprovalsArgs {
    /// pending, approved, rejected, expired, cancelled, or `all`.
    #[arg(long, default_value = "pending")]
    pub status: String,
    /// Only approvals of this run (id, unique prefix, or `latest`).
    #[arg(long = "run")]
    pub run_id: Option<String>,
    #[arg(long)]
    pub json: bool,
}

/// What went wrong talking to the API.
#[derive(Debug)]
enum ClientError {
    /// Nothing answered at the URL.
    Unreachable {
        url: String,
        reason: String,
    },
    /// The API answered with an error status.
    Api {
        status: StatusCode,
        code: String,
        message: String,
        details: Vec<String>,
        retry_after: Option<String>,
    },
    Other(anyhow::Error),
}

impl fmt::Display for ClientError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ClientError::Unreachable { url, reason } => write!(
                f,
                "cannot reach the tradeloom API at {url} ({reason}); start it with `tradeloom serve`, \
                 or point --api (or TRADELOOM_API_URL) at a running server"
            ),
            ClientError::Api {
                status,
                code,
                message,
                details,
                retry_after,
                ..
            } => {
                write!(f, "{message} (HTTP {}, {code})", status.as_u16())?;
                for d in details {
                    write!(f, "\n  - {d}")?;
                }
                if let Some(after) = retry_after {
                    write!(f, "\n  retry after {after} s")?;
                }
                Ok(())
            }
            ClientError::Other(e) => write!(f, "{e:#}"),
        }
    }
}

impl From<anyhow::Error> for ClientError {
    fn from(e: anyhow::Error) -> Self {
        ClientError::Other(e)
    }
}

/// One line per entry of an error's `details.errors` (strings, or objects with a path/line and
/// a message).
fn detail_lines(body: &Value) -> Vec<String> {
    let list = body
        .pointer("/details/errors")
        .or_else(|| body.get("errors"))
        .and_then(Value::as_array);
    list.map(|l| l.iter().map(describe_problem).collect())
        .unwrap_or_default()
}

fn describe_problem(p: &Value) -> String {
    match p {
        Value::String(s) => s.clone(),
        Value::Object(o) => {
            let message = o
                .get("message")
                .and_then(Value::as_str)
                .map_or_else(|| p.to_string(), str::to_string);
            let path = o.get("path").and_then(Value::as_str).unwrap_or_default();
            let mut place = Vec::new();
            if let Some(line) = o.get("line").and_then(Value::as_u64) {
                place.push(format!("line {line}"));
            }
            if !path.is_empty() {
                place.push(path.to_string());
            }
            place.push(message);
            place.join(": ")
        }
        other => other.to_string(),
    }
}

/// A whole id (a UUID, 8-4-4-4-12 hex digits, or an approval's `apr_` and 20 hex digits): used
/// as given, without listing anything.
fn is_full_id(given: &str) -> bool {
    if let Some(hex) = given.strip_prefix("apr_") {
        return hex.len() == 20 && hex.chars().all(|c| c.is_ascii_hexdigit());
    }
    let parts: Vec<&str> = given.split('-').collect();
    parts.iter().map(|p| p.len()).eq([8, 4, 4, 4, 12])
        && parts
            .iter()
            .all(|p| p.chars().all(|c| c.is_ascii_hexdigit()))
}

/// A connection to the API.
struct Api {
    base: Url,
    key: Option<String>,
    http: reqwest::Client,
}

impl Api {
    fn new(opts: &ApiOptions) -> Result<Api> {
        let base = Url::parse(opts.url.trim())
            .with_context(|| format!("--api `{}` is not a URL (e.g. {DEFAULT_API})", opts.url))?;
        if !matches!(base.scheme(), "http" | "https") || base.cannot_be_a_base() {
            bail!(
                "--api `{}` must be an http:// or https:// URL (e.g. {DEFAULT_API})",
                opts.url
            );
        }
        tradeloom_llm::install_crypto_provider();
        let http = reqwest::Client::builder()
            .connect_timeout(Duration::from_secs(5))
            .timeout(Duration::from_secs(60))
            .build()
            .context("cannot build the HTTP client")?;
        Ok(Api {
            base,
            key: opts.key.clone().filter(|k| !k.is_empty()),
            http,
        })
    }

    /// The base URL as the user gave it, for messages.
    fn shown(&self) -> String {
        self.base.as_str().trim_end_matches('/').to_string()
    }

    fn url(&self, segments: &[&str], query: &[(&str, String)]) -> Url {
        let mut url = self.base.clone();
        if let Ok(mut path) = url.path_segments_mut() {
            path.pop_if_empty().extend(segments);
        }
        if !query.is_empty() {
            let mut pairs = url.query_pairs_mut();
            for (k, v) in query {
                pairs.append_pair(k, v);
            }
        }
        url
    }

    /// Sends a request; any status is returned with the body (JSON, or `null`).
    async fn send(
        &self,
        method: Method,
        url: Url,
        body: Option<&Value>,
    ) -> Result<(StatusCode, Value, Option<String>), ClientError> {
        let mut req = self.http.request(method.clone(), url.clone());
        if let Some(key) = &self.key {
            req = req.bearer_auth(key);
        }
        if let Some(body) = body {
            req = req.json(body);
        }
        let response = req.send().await.map_err(|e| self.transport(&e))?;
        let status = response.status();
        let retry_after = response
            .headers()
            .get(reqwest::header::RETRY_AFTER)
            .and_then(|v| v.to_str().ok())
            .map(str::to_string);
        let text = response.text().await.map_err(|e| self.transport(&e))?;
        let value = if text.trim().is_empty() {
            Value::Null
        } else {
            serde_json::from_str(&text).map_err(|e| {
                ClientError::Other(anyhow::anyhow!(
                    "{method} {}: HTTP {} with a body that is not JSON ({e}): {}",
                    url.path(),
                    status.as_u16(),
                    text.chars().take(200).collect::<String>()
                ))
            })?
        };
        Ok((status, value, retry_after))
    }

    fn transport(&self, e: &reqwest::Error) -> ClientError {
        let reason = if e.is_connect() {
            "connection refused or host unreachable".to_string()
        } else if e.is_timeout() {
            "no answer in time".to_string()
        } else {
            // The full chain names the cause (DNS, TLS, a reset connection).
            let mut text = e.to_string();
            let mut source = std::error::Error::source(e);
            while let Some(s) = source {
                text = format!("{text}: {s}");
                source = s.source();
            }
            text
        };
        ClientError::Unreachable {
            url: self.shown(),
            reason,
        }
    }

    /// Sends a request and turns every non-2xx answer into [`ClientError::Api`].
    async fn call(
        &self,
        method: Method,
        segments: &[&str],
        query: &[(&str, String)],
        body: Option<&Value>,
    ) -> Result<Value, ClientError> {
        let url = self.url(segments, query);
        let (status, value, retry_after) = self.send(method, url, body).await?;
        if status.is_success() {
            Ok(value)
        } else {
            Err(api_error(status, value, retry_after))
        }
    }

    async fn get(&self, segments: &[&str], query: &[(&str, String)]) -> Result<Value, ClientError> {
        self.call(Method::GET, segments, query, None).await
    }

    async fn post(&self, segments: &[&str], body: &Value) -> Result<Value, ClientError> {
        self.call(Method::POST, segments, &[], Some(body)).await
    }

    /// Every id the list endpoint `path` returns (its array `list_key` of objects with
    /// `id_key`), page by page, in the endpoint's order.
    async fn all_ids(
        &self,
        path: &str,
        list_key: &str,
        id_key: &str,
    ) -> Result<Vec<String>, ClientError> {
        const PAGE: usize = 500;
        let mut ids = Vec::new();
        loop {
            let query = [
                ("limit", PAGE.to_string()),
                ("offset", ids.len().to_string()),
            ];
            let page = self.get(&[path], &query).await?;
            let items = page.get(list_key).and_then(Value::as_array);
            let n = items.map_or(0, Vec::len);
            ids.extend(
                items
                    .into_iter()
                    .flatten()
                    .map(|i| str_of(i, id_key).to_string()),
            );
            if n < PAGE {
                return Ok(ids);
            }
        }
    }

    /// A workflow run id as given: the full id, a unique prefix or `latest`
    /// ([`tradeloom_core::resolve_id`], the resolver of every id the CLI takes).
    async fn resolve_run(&self, given: &str) -> Result<String, ClientError> {
        if is_full_id(given) {
            return Ok(given.to_string());
        }
        let mut ids = self.all_ids("workflow-runs", "runs", "run_id").await?;
        ids.reverse(); // listed newest first
        tradeloom_core::resolve_id("workflow run", given, ids.iter().map(String::as_str))
            .map_err(|e| anyhow::anyhow!("{e} (see `tradeloom flow runs`)").into())
    }

    /// An approval id as given: the full id, a unique prefix or `latest`.
    async fn resolve_approval(&self, given: &str) -> Result<String, ClientError> {
        if is_full_id(given) {
            return Ok(given.to_string());
        }
        // Listed oldest first.
        let ids = self.all_ids("approvals", "approvals", "id").await?;
        tradeloom_core::resolve_id("approval", given, ids.iter().map(String::as_str))
            .map_err(|e| anyhow::anyhow!("{e} (see `tradeloom approvals --status all`)").into())
    }

    async fn run(&self, run_id: &str) -> Result<Value, ClientError> {
        self.get(&["workflow-runs", run_id], &[]).await
    }

    /// Every event of a run after `after_seq`, oldest first.
    async fn events_after(&self, run_id: &str, after_seq: i64) -> Result<Vec<Value>, ClientError> {
        let mut all = Vec::new();
        let mut after = after_seq;
        loop {
            let page = self
                .get(
                    &["workflow-runs", run_id, "events"],
                    &[
                        ("after_seq", after.to_string()),
                        ("limit", EVENT_PAGE.to_string()),
                    ],
                )
                .await?;
            let events = page
                .get("events")
                .and_then(Value::as_array)
                .cloned()
                .unwrap_or_default();
            let n = events.len();
            if let Some(last) = events
                .last()
                .and_then(|e| e.get("seq"))
                .and_then(Value::as_i64)
            {
                after = last;
            }
            all.extend(events);
            if n < EVENT_PAGE {
                return Ok(all);
            }
        }
    }
}

fn api_error(status: StatusCode, body: Value, retry_after: Option<String>) -> ClientError {
    let code = body
        .get("error")
        .and_then(Value::as_str)
        .unwrap_or("http_error")
        .to_string();
    let message = body.get("message").and_then(Value::as_str).map_or_else(
        || {
            format!(
                "the API answered {}",
                status.canonical_reason().unwrap_or("an error")
            )
        },
        str::to_string,
    );
    ClientError::Api {
        status,
        code,
        message,
        details: detail_lines(&body),
        retry_after,
    }
}

/// Runs a client command: API and connection errors are printed and exit 1.
fn execute<F>(opts: &ApiOptions, work: impl FnOnce(Api) -> F) -> Result<ExitCode>
where
    F: Future<Output = Result<ExitCode, ClientError>>,
{
    let api = Api::new(opts)?;
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .context("cannot start the async runtime")?;
    match rt.block_on(work(api)) {
        Ok(code) => Ok(code),
        Err(e) => {
            eprintln!("error: {e}");
            Ok(ExitCode::from(EXIT_FAILED))
        }
    }
}

fn print_json(value: &Value) {
    println!(
        "{}",
        serde_json::to_string_pretty(value).unwrap_or_else(|_| value.to_string())
    );
}

fn str_of<'a>(v: &'a Value, key: &str) -> &'a str {
    v.get(key).and_then(Value::as_str).unwrap_or_default()
}

fn shown(v: Option<&Value>) -> String {
    match v {
        None | Some(Value::Null) => String::new(),
        Some(Value::String(s)) => s.clone(),
        Some(other) => other.to_string(),
    }
}

/// Reads `--inputs-json` and `--input NAME=VALUE` into one object.
pub fn parse_inputs(pairs: &[String], inputs_json: Option<&str>) -> Result<Map<String, Value>> {
    let mut inputs = match inputs_json {
        None => Map::new(),
        Some(text) => match serde_json::from_str::<Value>(text) {
            Ok(Value::Object(map)) => map,
            Ok(other) => bail!(
                "--inputs-json must be a JSON object like {{\"symbol\": \"AAA\"}}, not {other}"
            ),
            Err(e) => bail!("--inputs-json is not valid JSON: {e}"),
        },
    };
    for pair in pairs {
        let Some((name, value)) = pair.split_once('=') else {
            bail!("--input `{pair}` must be NAME=VALUE (e.g. --input symbol=AAA)");
        };
        let name = name.trim();
        if name.is_empty() {
            bail!("--input `{pair}` has no name before `=`");
        }
        let value =
            serde_json::from_str(value).unwrap_or_else(|_| Value::String(value.to_string()));
        inputs.insert(name.to_string(), value);
    }
    Ok(inputs)
}

/// `tradeloom flow submit FILE`: compile locally, create or update the workflow, start a run,
/// optionally follow it.
pub fn submit(opts: &ApiOptions, args: &SubmitArgs) -> Result<ExitCode> {
    let text = std::fs::read_to_string(&args.file)
        .with_context(|| format!("cannot read the workflow {}", args.file.display()))?;
    let origin = args.file.display().to_string();
    let compiled = parse_definition(&text, &origin)
        .and_then(|d| compile(&d).map(|c| (d, c)).map_err(FlowError::Compile));
    let (definition, compiled) = match compiled {
        Ok(ok) => ok,
        Err(e) => {
            let count = match &e {
                FlowError::Compile(list) => list.len(),
                _ => 1,
            };
            eprintln!("{e}");
            eprintln!("{origin}: {count} problem(s); nothing was submitted");
            return Ok(ExitCode::from(EXIT_BAD_INPUT));
        }
    };
    let inputs = parse_inputs(&args.inputs, args.inputs_json.as_deref())?;
    let timeout = args.timeout.map(seconds).transpose().context("--timeout")?;
    let body = definition.to_json_value();
    let name = definition.name.clone();
    let local_hash = compiled.ir.hash().to_string();
    execute(opts, |api| async move {
        let (workflow, how) = match api
            .call(Method::POST, &["workflows"], &[], Some(&body))
            .await
        {
            Ok(created) => (created, "created"),
            Err(ClientError::Api { code, .. }) if code == "workflow_exists" => {
                let id = workflow_id_by_name(&api, &name).await?;
                let updated = api
                    .call(Method::PUT, &["workflows", &id], &[], Some(&body))
                    .await?;
                let how = if updated.get("changed") == Some(&Value::Bool(false)) {
                    "unchanged"
                } else {
                    "updated"
                };
                (updated, how)
            }
            Err(e) => return Err(e),
        };
        let workflow_id = str_of(&workflow, "id").to_string();
        let version = workflow.get("version").cloned().unwrap_or(Value::Null);
        if !args.json {
            println!(
                "workflow `{name}` {how}: id {workflow_id}, version {}",
                shown(Some(&version))
            );
            if let Some(remote) = workflow.get("ir_hash").and_then(Value::as_str)
                && remote != local_hash
            {
                println!(
                    "warning: the server compiled IR {remote}, this tradeloom compiles {local_hash} (different versions?)"
                );
            }
            for w in workflow
                .get("warnings")
                .and_then(Value::as_array)
                .into_iter()
                .flatten()
            {
                println!("warning: {}", shown(Some(w)));
            }
        }
        let started = api
            .post(
                &["workflows", &workflow_id, "runs"],
                &json!({"inputs": inputs, "version": version}),
            )
            .await?;
        let run_id = str_of(&started, "run_id").to_string();
        if run_id.is_empty() {
            return Err(
                anyhow::anyhow!("the API started a run but sent no run_id: {started}").into(),
            );
        }
        if !args.wait {
            if args.json {
                print_json(&json!({
                    "workflow_id": workflow_id, "workflow_version": version,
                    "workflow": how, "run_id": run_id, "status": started.get("status"),
                }));
            } else {
                println!("run {run_id} started ({})", str_of(&started, "status"));
                println!("follow it with: tradeloom flow status {run_id} --watch");
            }
            return Ok(ExitCode::SUCCESS);
        }
        if !args.json {
            println!("run {run_id} started; following it");
        }
        let deadline = timeout.map(|t| Instant::now() + t);
        let (view, outcome) = follow(&api, &run_id, 0, !args.json, deadline).await?;
        Ok(conclude(&api, &view, outcome, args.json))
    })
}

fn seconds(s: f64) -> Result<Duration> {
    Duration::try_from_secs_f64(s).map_err(|_| anyhow::anyhow!("`{s}` is not a number of seconds"))
}

/// The id of the workflow named `name` (`GET /workflows`, page by page).
async fn workflow_id_by_name(api: &Api, name: &str) -> Result<String, ClientError> {
    const PAGE: usize = 100;
    let mut offset = 0;
    loop {
        let list = api
            .get(
                &["workflows"],
                &[("limit", PAGE.to_string()), ("offset", offset.to_string())],
            )
            .await?;
        let page = list
            .get("workflows")
            .and_then(Value::as_array)
            .cloned()
            .unwrap_or_default();
        if let Some(id) = page
            .iter()
            .find(|w| w.get("name").and_then(Value::as_str) == Some(name))
            .and_then(|w| w.get("id").and_then(Value::as_str))
        {
            return Ok(id.to_string());
        }
        if page.len() < PAGE {
            return Err(ClientError::Other(anyhow::anyhow!(
                "the API says a workflow named `{name}` exists but does not list it"
            )));
        }
        offset += PAGE;
    }
}

/// How following a run ended.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Outcome {
    /// completed, failed or cancelled.
    Finished,
    /// Waiting for at least one pending approval.
    Waiting,
    TimedOut,
}

fn pending_approvals(view: &Value) -> Vec<&Value> {
    view.get("approvals")
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
        .filter(|a| str_of(a, "status") == "pending")
        .collect()
}

fn is_terminal(status: &str) -> bool {
    matches!(status, "completed" | "failed" | "cancelled")
}

/// Polls a run and its events (printing each event after `after_seq` when `print`) until it
/// finishes, waits for an approval, or `deadline` passes.
async fn follow(
    api: &Api,
    run_id: &str,
    mut after_seq: i64,
    print: bool,
    deadline: Option<Instant>,
) -> Result<(Value, Outcome), ClientError> {
    loop {
        // The run first, then its events: when the run is seen finished, the events read
        // afterwards include everything up to its end.
        let view = api.run(run_id).await?;
        for event in api.events_after(run_id, after_seq).await? {
            if let Some(seq) = event.get("seq").and_then(Value::as_i64) {
                after_seq = after_seq.max(seq);
            }
            if print {
                println!("{}", describe_event(&event));
            }
        }
        let status = str_of(&view, "status");
        if is_terminal(status) {
            return Ok((view, Outcome::Finished));
        }
        if status == "waiting" && !pending_approvals(&view).is_empty() {
            return Ok((view, Outcome::Waiting));
        }
        if deadline.is_some_and(|d| Instant::now() >= d) {
            return Ok((view, Outcome::TimedOut));
        }
        tokio::time::sleep(POLL).await;
    }
}

/// `HH:MM:SS.mmm` of an RFC 3339 time (the text itself when it is not one).
fn clock(at: &str) -> String {
    at.split_once('T')
        .map_or(at, |(_, t)| t.get(..12).unwrap_or(t))
        .to_string()
}

/// One line for a run event: `HH:MM:SS.mmm  subject: what happened`.
fn describe_event(e: &Value) -> String {
    let at = clock(str_of(e, "at"));
    let node = e.get("node_id").and_then(Value::as_str);
    let p = e.get("payload").cloned().unwrap_or(Value::Null);
    let s = |k: &str| shown(p.get(k));
    let what = match str_of(e, "kind") {
        "run_created" => format!("created (workflow version {})", s("version")),
        "run_started" => "started".to_string(),
        "node_queued" => match p.get("not_before").filter(|v| !v.is_null()) {
            Some(t) => format!(
                "queued ({}, not before {})",
                s("type"),
                clock(&shown(Some(t)))
            ),
            None => format!("queued ({})", s("type")),
        },
        "node_started" => format!("running (attempt {})", s("attempt")),
        "node_completed" => "completed".to_string(),
        "node_retrying" => format!(
            "attempt {} failed: {}; retrying in {} ms (attempt {} of {})",
            s("attempt"),
            s("error"),
            s("delay_ms"),
            s("next_attempt"),
            s("max_attempts")
        ),
        "node_failed" => format!("failed (attempt {}): {}", s("attempt"), s("error")),
        "node_skipped" => format!("skipped: {}", s("reason")),
        "approval_requested" => {
            format!("waiting for approval {}: {}", s("approval_id"), s("prompt"))
        }
        "approval_decided" => {
            let mut line = if p.get("expired") == Some(&Value::Bool(true)) {
                format!(
                    "approval {} expired; default {}",
                    s("approval_id"),
                    s("decision")
                )
            } else {
                format!(
                    "{} by {} (approval {})",
                    s("decision"),
                    s("by"),
                    s("approval_id")
                )
            };
            let comment = s("comment");
            if !comment.is_empty() {
                line.push_str(&format!(": {comment}"));
            }
            line
        }
        "patch_applied" => {
            let removed = p
                .get("removed")
                .and_then(Value::as_array)
                .filter(|r| !r.is_empty())
                .map(|r| {
                    let ids: Vec<String> = r.iter().map(|v| shown(Some(v))).collect();
                    format!("; removed {}", ids.join(", "))
                })
                .unwrap_or_default();
            format!(
                "patched by {}: IR version {}{removed}",
                s("by"),
                s("ir_version")
            )
        }
        "run_cancelled" => {
            let reason = s("reason");
            if reason.is_empty() {
                format!("cancelled by {}", s("by"))
            } else {
                format!("cancelled by {}: {reason}", s("by"))
            }
        }
        "run_finished" => {
            let error = s("error");
            if error.is_empty() {
                s("status")
            } else {
                format!("{}: {error}", s("status"))
            }
        }
        "warning" => format!("warning: {}", s("message")),
        other => format!("{other} {p}"),
    };
    let subject = node.map_or_else(|| "run".to_string(), |n| format!("node {n}"));
    format!("{at}  {subject}: {what}")
}

/// Prints the end of following (the run's table, pending approvals with the commands to decide
/// them) and returns the exit code.
fn conclude(api: &Api, view: &Value, outcome: Outcome, json_out: bool) -> ExitCode {
    let status = str_of(view, "status");
    if json_out {
        let mut out = view.clone();
        if let Value::Object(map) = &mut out {
            map.insert(
                "timed_out".into(),
                Value::Bool(outcome == Outcome::TimedOut),
            );
        }
        print_json(&out);
    } else {
        print!("{}", render_run(api, view));
        match outcome {
            Outcome::Finished => println!("run {} {status}", str_of(view, "run_id")),
            Outcome::Waiting => println!(
                "run {} is waiting for approval; decide with one of the commands above",
                str_of(view, "run_id")
            ),
            Outcome::TimedOut => println!(
                "timed out while the run is {status}; follow it with: tradeloom flow status {} --watch",
                str_of(view, "run_id")
            ),
        }
    }
    match outcome {
        Outcome::TimedOut => ExitCode::from(EXIT_TIMED_OUT),
        Outcome::Waiting => ExitCode::from(EXIT_WAITING),
        Outcome::Finished if status == "completed" => ExitCode::SUCCESS,
        Outcome::Finished => ExitCode::from(EXIT_FAILED),
    }
}

/// The `--api` flag to repeat in printed commands, when it is not the default.
fn api_flag(api: &Api) -> String {
    let url = api.shown();
    if url == DEFAULT_API {
        String::new()
    } else {
        format!(" --api {url}")
    }
}

/// A run as text: summary, node table, pending approvals with the commands to decide them.
fn render_run(api: &Api, view: &Value) -> String {
    let mut out = String::new();
    let mut pairs = vec![
        ("run", str_of(view, "run_id").to_string()),
        (
            "workflow",
            format!(
                "{} (id {}, version {})",
                str_of(view, "workflow_name"),
                str_of(view, "workflow_id"),
                shown(view.get("workflow_version"))
            ),
        ),
        ("status", str_of(view, "status").to_string()),
        (
            "IR",
            format!(
                "version {} ({})",
                shown(view.get("ir_version")),
                str_of(view, "ir_hash")
            ),
        ),
    ];
    let patches = view
        .get("patches")
        .and_then(Value::as_array)
        .map_or(0, Vec::len);
    if patches > 0 {
        pairs.push(("patches", patches.to_string()));
    }
    let error = shown(view.get("error"));
    if !error.is_empty() {
        pairs.push(("error", error));
    }
    out.push_str(&table::pairs(&pairs));
    let rows: Vec<Vec<String>> = view
        .get("nodes")
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
        .map(|n| {
            let mut status = str_of(n, "status").to_string();
            if n.get("removed") == Some(&Value::Bool(true)) {
                status.push_str(" (removed)");
            }
            vec![
                str_of(n, "id").to_string(),
                n.get("type")
                    .and_then(Value::as_str)
                    .unwrap_or("-")
                    .to_string(),
                status,
                shown(n.get("attempts")),
                shown(n.get("error")),
            ]
        })
        .collect();
    out.push_str(&table::render(
        &["node", "type", "status", "attempts", "error"],
        &rows,
    ));
    let pending = pending_approvals(view);
    if !pending.is_empty() {
        out.push_str("pending approvals:\n");
        let flag = api_flag(api);
        for a in pending {
            let id = str_of(a, "id");
            out.push_str(&format!(
                "  {id}  node {}: {}  (expires {}, then {})\n    tradeloom approve {id}{flag}\n    tradeloom reject {id}{flag}\n",
                str_of(a, "node_id"),
                str_of(a, "prompt"),
                str_of(a, "expires_at"),
                str_of(a, "default_decision"),
            ));
        }
    }
    out
}

/// `tradeloom flow status RUN_ID [--watch]`.
pub fn status(opts: &ApiOptions, args: &StatusArgs) -> Result<ExitCode> {
    let timeout = args.timeout.map(seconds).transpose().context("--timeout")?;
    execute(opts, |api| async move {
        let run_id = api.resolve_run(&args.run_id).await?;
        if !args.watch {
            let view = api.run(&run_id).await?;
            if args.json {
                print_json(&view);
            } else {
                print!("{}", render_run(&api, &view));
            }
            return Ok(ExitCode::SUCCESS);
        }
        // Only what happens from now on is printed.
        let seen = api
            .events_after(&run_id, 0)
            .await?
            .iter()
            .filter_map(|e| e.get("seq").and_then(Value::as_i64))
            .max()
            .unwrap_or(0);
        let deadline = timeout.map(|t| Instant::now() + t);
        let (view, outcome) = follow(&api, &run_id, seen, !args.json, deadline).await?;
        Ok(conclude(&api, &view, outcome, args.json))
    })
}

/// Reads a patch document: JSON, or YAML; `-` is stdin. Must be an array of operations.
fn read_patch(path: &Path) -> Result<Value> {
    let (origin, text) = if path == Path::new("-") {
        let mut text = String::new();
        std::io::stdin()
            .read_to_string(&mut text)
            .context("cannot read the patch from stdin")?;
        ("stdin".to_string(), text)
    } else {
        let text = std::fs::read_to_string(path)
            .with_context(|| format!("cannot read the patch {}", path.display()))?;
        (path.display().to_string(), text)
    };
    // JSON first; YAML (a superset) for the rest, with the JSON error when it looked like JSON.
    let value: Value = match serde_json::from_str(&text) {
        Ok(v) => v,
        Err(json_error) => match yaml_serde::from_str::<Value>(&text) {
            Ok(v) => v,
            Err(_) if text.trim_start().starts_with(['[', '{']) => bail!(
                "{origin}:{}:{}: not valid JSON: {json_error}",
                json_error.line(),
                json_error.column()
            ),
            Err(e) => bail!("{origin}: neither JSON nor YAML: {e}"),
        },
    };
    match &value {
        Value::Array(ops) if !ops.is_empty() => Ok(value),
        Value::Array(_) => bail!("{origin}: the patch has no operations"),
        _ => bail!(
            "{origin}: a patch is an array of RFC 6902 operations, e.g. \
             [{{\"op\": \"add\", \"path\": \"/nodes/-\", \"value\": {{...}}}}]"
        ),
    }
}

/// `tradeloom flow patch RUN_ID PATCH_FILE`.
pub fn patch(opts: &ApiOptions, args: &PatchArgs) -> Result<ExitCode> {
    let operations = read_patch(&args.patch_file)?;
    execute(opts, |api| async move {
        let run_id = api.resolve_run(&args.run_id).await?;
        let url = api.url(&["workflow-runs", &run_id, "patch"], &[]);
        let (status, body, retry_after) = api.send(Method::POST, url, Some(&operations)).await?;
        if status.is_success() {
            if args.json {
                print_json(&body);
            } else {
                println!(
                    "run {}: patch applied; IR version {}",
                    run_id,
                    shown(body.get("ir_version"))
                );
            }
            return Ok(ExitCode::SUCCESS);
        }
        if status == StatusCode::UNPROCESSABLE_ENTITY {
            if args.json {
                print_json(&body);
            } else {
                let reasons = detail_lines(&body);
                eprintln!(
                    "run {}: the patch was rejected ({} reason(s)); nothing changed:",
                    run_id,
                    reasons.len()
                );
                for r in reasons {
                    eprintln!("  - {r}");
                }
            }
            return Ok(ExitCode::from(EXIT_BAD_INPUT));
        }
        Err(api_error(status, body, retry_after))
    })
}

/// `tradeloom flow cancel RUN_ID`.
pub fn cancel(opts: &ApiOptions, args: &CancelArgs) -> Result<ExitCode> {
    execute(opts, |api| async move {
        let body = match &args.reason {
            Some(r) => json!({"reason": r}),
            None => json!({}),
        };
        let run_id = api.resolve_run(&args.run_id).await?;
        let view = api
            .post(&["workflow-runs", &run_id, "cancel"], &body)
            .await?;
        if args.json {
            print_json(&view);
        } else {
            println!("run {run_id} {}", str_of(&view, "status"));
        }
        Ok(ExitCode::SUCCESS)
    })
}

/// `tradeloom flow runs`.
pub fn runs(opts: &ApiOptions, args: &RunsArgs) -> Result<ExitCode> {
    execute(opts, |api| async move {
        let mut query = vec![("limit", args.limit.to_string())];
        if let Some(s) = &args.status {
            query.push(("status", s.clone()));
        }
        let list = api.get(&["workflow-runs"], &query).await?;
        if args.json {
            print_json(&list);
            return Ok(ExitCode::SUCCESS);
        }
        let rows: Vec<Vec<String>> = list
            .get("runs")
            .and_then(Value::as_array)
            .into_iter()
            .flatten()
            .map(|r| {
                vec![
                    str_of(r, "run_id").to_string(),
                    str_of(r, "workflow_id").to_string(),
                    shown(r.get("workflow_version")),
                    str_of(r, "status").to_string(),
                    shown(r.get("ir_version")),
                    str_of(r, "created_at").to_string(),
                    shown(r.get("error")),
                ]
            })
            .collect();
        if rows.is_empty() {
            println!("no workflow runs");
        } else {
            print!(
                "{}",
                table::render(
                    &[
                        "run", "workflow", "version", "status", "ir", "created", "error"
                    ],
                    &rows
                )
            );
        }
        Ok(ExitCode::SUCCESS)
    })
}

/// `tradeloom approve ID` (`approve = true`) and `tradeloom reject ID`.
pub fn decide(opts: &ApiOptions, args: &DecideArgs, approve: bool) -> Result<ExitCode> {
    let decision = if approve { "approve" } else { "reject" };
    execute(opts, |api| async move {
        let mut body = Map::new();
        body.insert("decision".into(), json!(decision));
        if let Some(c) = &args.comment {
            body.insert("comment".into(), json!(c));
        }
        if let Some(b) = &args.by {
            body.insert("by".into(), json!(b));
        }
        let body = Value::Object(body);
        let id = api.resolve_approval(&args.id).await?;
        let approval = api.post(&["approvals", &id, "decide"], &body).await?;
        let run_id = str_of(&approval, "run_id").to_string();
        if args.json {
            print_json(&approval);
            return Ok(ExitCode::SUCCESS);
        }
        println!(
            "approval {id} {} by {} (run {run_id}, node {})",
            str_of(&approval, "status"),
            str_of(&approval, "decided_by"),
            str_of(&approval, "node_id")
        );
        if !run_id.is_empty() {
            let view = api.run(&run_id).await?;
            println!(
                "run {run_id} is {}; follow it with: tradeloom flow status {run_id} --watch{}",
                str_of(&view, "status"),
                api_flag(&api)
            );
        }
        Ok(ExitCode::SUCCESS)
    })
}

/// `tradeloom approvals`.
pub fn approvals(opts: &ApiOptions, args: &ApprovalsArgs) -> Result<ExitCode> {
    execute(opts, |api| async move {
        let mut query = vec![];
        if args.status != "all" {
            query.push(("status", args.status.clone()));
        }
        if let Some(r) = &args.run_id {
            query.push(("run_id", api.resolve_run(r).await?));
        }
        let list = api.get(&["approvals"], &query).await?;
        if args.json {
            print_json(&list);
            return Ok(ExitCode::SUCCESS);
        }
        let rows: Vec<Vec<String>> = list
            .get("approvals")
            .and_then(Value::as_array)
            .into_iter()
            .flatten()
            .map(|a| {
                vec![
                    str_of(a, "id").to_string(),
                    str_of(a, "run_id").to_string(),
                    str_of(a, "node_id").to_string(),
                    str_of(a, "status").to_string(),
                    str_of(a, "expires_at").to_string(),
                    str_of(a, "prompt").to_string(),
                ]
            })
            .collect();
        if rows.is_empty() {
            println!(
                "no {} approvals",
                if args.status == "all" {
                    ""
                } else {
                    &args.status
                }
            );
        } else {
            print!(
                "{}",
                table::render(
                    &["approval", "run", "node", "status", "expires", "prompt"],
                    &rows
                )
            );
        }
        Ok(ExitCode::SUCCESS)
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn inputs_are_json_when_they_parse_else_strings() {
        let m = parse_inputs(
            &[
                "n=5".into(),
                "s=AAA".into(),
                "b=true".into(),
                "l=[1,2]".into(),
                "q=\"5\"".into(),
                "e=".into(),
                "x=a=b".into(),
            ],
            Some(r#"{"n": 1, "keep": "k"}"#),
        )
        .unwrap();
        assert_eq!(m["n"], json!(5));
        assert_eq!(m["s"], json!("AAA"));
        assert_eq!(m["b"], json!(true));
        assert_eq!(m["l"], json!([1, 2]));
        assert_eq!(m["q"], json!("5"));
        assert_eq!(m["e"], json!(""));
        assert_eq!(m["x"], json!("a=b"));
        assert_eq!(m["keep"], json!("k"));
    }

    #[test]
    fn bad_inputs_say_what_is_wrong() {
        let e = parse_inputs(&["novalue".into()], None).unwrap_err();
        assert!(e.to_string().contains("NAME=VALUE"), "{e}");
        let e = parse_inputs(&["=1".into()], None).unwrap_err();
        assert!(e.to_string().contains("no name"), "{e}");
        let e = parse_inputs(&[], Some("[1]")).unwrap_err();
        assert!(e.to_string().contains("JSON object"), "{e}");
        let e = parse_inputs(&[], Some("{")).unwrap_err();
        assert!(e.to_string().contains("not valid JSON"), "{e}");
    }

    #[test]
    fn problems_read_path_and_message() {
        let body = json!({"error": "x", "message": "m", "details": {"errors": [
            "plain reason",
            {"code": "cycle", "path": "nodes[1].needs[0]", "message": "a cycle"},
            {"message": "no path", "line": 3},
        ]}});
        assert_eq!(
            detail_lines(&body),
            vec![
                "plain reason".to_string(),
                "nodes[1].needs[0]: a cycle".to_string(),
                "line 3: no path".to_string(),
            ]
        );
    }

    #[test]
    fn events_read_as_one_line() {
        let e = json!({"seq": 3, "kind": "approval_requested", "node_id": "review",
            "payload": {"approval_id": "ap1", "prompt": "Trade?"}, "at": "2026-01-02T03:04:05.678901Z"});
        assert_eq!(
            describe_event(&e),
            "03:04:05.678  node review: waiting for approval ap1: Trade?"
        );
        let e = json!({"seq": 9, "kind": "run_finished", "node_id": null,
            "payload": {"status": "failed", "error": "boom"}, "at": "2026-01-02T03:04:05Z"});
        assert_eq!(describe_event(&e), "03:04:05Z  run: failed: boom");
    }
}
