//! Logging: the one `tracing` subscriber of a tradeloom process, set up once at start.
//!
//! Logs go to stderr; stdout stays for command output (tables, `--json`). Two formats:
//!
//! - `json`: one JSON object per line. The fields of every span the event happened in (outermost
//!   first, inner spans overriding) are flattened into the line next to the event's own fields,
//!   so a line logged inside a run carries `run_id` and `trace_id` at the top level and
//!   `jq 'select(.run_id == "…")'` finds it. `spans` names the span path (`request>node`).
//! - `text`: the human format of `tracing-subscriber` (spans shown as `run{run_id=…}:`).
//!
//! The default format is `json` for the long-running roles (`serve`, `mock-llm`) and `text` for
//! one-shot commands. The level is `--log-level` (an `EnvFilter` directive such as `debug` or
//! `info,tradeloom_orchestrator=debug`), else `RUST_LOG`, else `info` for long-running roles and
//! `warn` for one-shot commands (whose output is their result, not a log).

use std::fmt;
use std::io::Write;
use std::sync::OnceLock;

use serde_json::{Map, Value};
use tracing::field::{Field, Visit};
use tracing::{Event, Subscriber};
use tracing_subscriber::EnvFilter;
use tracing_subscriber::fmt::format::{JsonFields, Writer};
use tracing_subscriber::fmt::time::{FormatTime, SystemTime};
use tracing_subscriber::fmt::{FmtContext, FormatEvent, FormatFields, FormattedFields};
use tracing_subscriber::registry::LookupSpan;

/// The line format of the logs (`--log-format`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum LogFormat {
    /// One JSON object per line, span fields (run_id, job_id, trace_id, …) flattened into it.
    Json,
    /// Human-readable lines.
    Text,
}

/// What a command is, for the defaults of format and level.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Role {
    /// A server or other process that runs until stopped: JSON at `info`.
    LongRunning,
    /// A command that does one thing and prints its result: text at `warn`.
    OneShot,
}

/// Why the subscriber could not be installed.
#[derive(Debug, thiserror::Error)]
pub enum LoggingError {
    /// `origin` is where the directives came from (`--log-level debug`, `RUST_LOG=…`).
    #[error("{origin}")]
    BadDirectives {
        origin: String,
        #[source]
        source: tracing_subscriber::filter::ParseError,
    },
    #[error("cannot install the logger: {0}")]
    Install(String),
}

/// Checks a `--log-level` value (clap value parser): any `EnvFilter` directive list.
pub fn parse_level(text: &str) -> Result<String, String> {
    EnvFilter::try_new(text)
        .map(|_| text.to_string())
        .map_err(|e| {
            format!("{e}; expected a level (error, warn, info, debug, trace) or directives such as `info,tradeloom_orchestrator=debug`")
        })
}

/// The format [`init`] chose, for [`stderr_line`].
static FORMAT: OnceLock<LogFormat> = OnceLock::new();

/// Writes a message for the user (an error, a warning, a progress line) on stderr: as given in
/// the `text` format; in the `json` format as one JSON object per message, in the shape of the
/// log lines (`timestamp`, `level` — `ERROR` for `error: …`, `WARN` for `warning: …`, else
/// `INFO` — `target` and `message`), so that stderr holds nothing but JSON lines. The
/// `tradeloom` binary routes every `eprintln!` here.
pub fn stderr_line(text: &str) {
    let mut err = std::io::stderr().lock();
    // A stderr that cannot be written has nowhere to report that either.
    let _ = match FORMAT.get() {
        Some(LogFormat::Json) => {
            let level = if text.starts_with("error") {
                "ERROR"
            } else if text.starts_with("warning") {
                "WARN"
            } else {
                "INFO"
            };
            let mut timestamp = String::new();
            let _ = SystemTime.format_time(&mut Writer::new(&mut timestamp));
            let line = serde_json::json!({
                "timestamp": timestamp,
                "level": level,
                "target": "tradeloom",
                "message": text,
            });
            writeln!(err, "{line}")
        }
        _ => writeln!(err, "{text}"),
    };
}

/// The `--log-format` asked for on the command line or in `TRADELOOM_LOG_FORMAT`, read
/// without clap (for reporting clap's own errors in that format).
pub fn requested_format() -> Option<LogFormat> {
    let mut args = std::env::args().skip(1);
    let mut found = std::env::var("TRADELOOM_LOG_FORMAT").ok();
    while let Some(arg) = args.next() {
        if arg == "--log-format" {
            found = args.next();
        } else if let Some(v) = arg.strip_prefix("--log-format=") {
            found = Some(v.to_string());
        }
    }
    match found.as_deref() {
        Some("json") => Some(LogFormat::Json),
        Some("text") => Some(LogFormat::Text),
        _ => None,
    }
}

/// Sets the format of [`stderr_line`] without a subscriber (before `init` could run).
pub fn set_format(format: LogFormat) {
    let _ = FORMAT.set(format);
}

/// Installs the process's subscriber. Call once, before anything logs.
pub fn init(
    format: Option<LogFormat>,
    level: Option<&str>,
    role: Role,
) -> Result<(), LoggingError> {
    let format = format.unwrap_or(match role {
        Role::LongRunning => LogFormat::Json,
        Role::OneShot => LogFormat::Text,
    });
    // First, so that even an error in the level below is reported in this format.
    set_format(format);
    let default_level = match role {
        Role::LongRunning => "info",
        Role::OneShot => "warn",
    };
    let directives = |text: &str, origin: String| {
        EnvFilter::try_new(text).map_err(|source| LoggingError::BadDirectives { origin, source })
    };
    let filter = match level {
        Some(level) => directives(level, format!("--log-level {level}"))?,
        None => match std::env::var("RUST_LOG") {
            Ok(text) if !text.trim().is_empty() => directives(&text, format!("RUST_LOG={text}"))?,
            _ => EnvFilter::new(default_level),
        },
    };

    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr);
    let installed = match format {
        LogFormat::Json => builder
            .fmt_fields(JsonFields::new())
            .event_format(FlatJson)
            .try_init(),
        LogFormat::Text => builder.with_ansi(false).try_init(),
    };
    installed.map_err(|e| LoggingError::Install(e.to_string()))
}

/// The `json` line format: timestamp, level, target, the fields of every enclosing span, the
/// event's fields (`message` included) and the span path.
struct FlatJson;

impl<S, N> FormatEvent<S, N> for FlatJson
where
    S: Subscriber + for<'a> LookupSpan<'a>,
    N: for<'a> FormatFields<'a> + 'static,
{
    fn format_event(
        &self,
        ctx: &FmtContext<'_, S, N>,
        mut writer: Writer<'_>,
        event: &Event<'_>,
    ) -> fmt::Result {
        let meta = event.metadata();
        let mut line = Map::new();
        let mut timestamp = String::new();
        SystemTime.format_time(&mut Writer::new(&mut timestamp))?;
        line.insert("timestamp".into(), Value::String(timestamp));
        line.insert("level".into(), Value::String(meta.level().to_string()));
        line.insert("target".into(), Value::String(meta.target().to_string()));
        let mut path = Vec::new();
        if let Some(scope) = ctx.event_scope() {
            for span in scope.from_root() {
                path.push(span.name());
                let extensions = span.extensions();
                // With `JsonFields` a span's recorded fields are kept as one JSON object.
                if let Some(fields) = extensions.get::<FormattedFields<N>>()
                    && let Ok(Value::Object(fields)) =
                        serde_json::from_str::<Value>(fields.fields.as_str())
                {
                    line.extend(fields);
                }
            }
        }
        let mut visitor = FieldVisitor(&mut line);
        event.record(&mut visitor);
        if !path.is_empty() {
            line.insert("spans".into(), Value::String(path.join(">")));
        }
        writeln!(writer, "{}", Value::Object(line))
    }
}

/// Collects an event's fields as JSON values.
struct FieldVisitor<'a>(&'a mut Map<String, Value>);

impl Visit for FieldVisitor<'_> {
    fn record_str(&mut self, field: &Field, value: &str) {
        self.0
            .insert(field.name().to_string(), Value::String(value.to_string()));
    }

    fn record_bool(&mut self, field: &Field, value: bool) {
        self.0.insert(field.name().to_string(), Value::Bool(value));
    }

    fn record_i64(&mut self, field: &Field, value: i64) {
        self.0.insert(field.name().to_string(), Value::from(value));
    }

    fn record_u64(&mut self, field: &Field, value: u64) {
        self.0.insert(field.name().to_string(), Value::from(value));
    }

    fn record_f64(&mut self, field: &Field, value: f64) {
        self.0.insert(field.name().to_string(), Value::from(value));
    }

    fn record_error(&mut self, field: &Field, value: &(dyn std::error::Error + 'static)) {
        self.0
            .insert(field.name().to_string(), Value::String(value.to_string()));
    }

    fn record_debug(&mut self, field: &Field, value: &dyn fmt::Debug) {
        self.0.insert(
            field.name().to_string(),
            Value::String(format!("{value:?}")),
        );
    }
}
