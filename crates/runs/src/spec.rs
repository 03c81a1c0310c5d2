//! The run spec: a strictly parsed YAML file that defines a run completely and immutably.
//!
//! ```yaml
//! name: goog-sma-cross
//! mode: backtest                 # backtest | paper (a paper run also needs `feed:`)
//! venue: sim
//! instruments: [{symbol: GOOG, price_precision: 2, size_precision: 0}]
//! data: [{symbol: GOOG, path: ../data/goog_1d.csv}]   # relative to the spec file
//! strategy: {name: sma_cross, params: {fast: 10, slow: 20, quantity: 10}}
//! execution: {fill_model: next_open, fee_bps: 0, slippage_bps: 0}
//! account: {initial_cash: 100000, currency: USD}
//! risk: {max_drawdown_pct: 50}
//! ```
//!
//! Unknown fields anywhere are errors with line and column; every semantic check names the field
//! and, where it can be found, the line.

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};

use schemars::JsonSchema;
use serde::{Deserialize, Serialize};
use tradeloom_core::connectivity::{Provider, ProviderKind};
use tradeloom_core::duration::{DurationSyntax, HOURS, MILLISECONDS, MINUTES, SECONDS};
use tradeloom_core::{AccountKind, Currency, Decimal, Instrument, InstrumentId, Symbol, UnixNanos};
use tradeloom_data::DataFormat;
use tradeloom_engine::config::DecimalSchema;
use tradeloom_engine::{
    EngineConfig, ExecutionConfig, MarginConfig, MarginRule, RiskConfig, Strategies, StrategyConfig,
};

use crate::error::RunError;
use crate::script::{ResolvedScript, ScriptStrategySpec, resolve_script};
use crate::user_strategy::UserStrategies;

/// `strategy:` — `{name: ..., params: {...}}`: a built-in (its parameters checked strictly when
/// the spec is parsed) or a strategy of the user's own, registered with [`UserStrategies`]
/// (its parameters are checked by its factory; a name that is neither is an error when the
/// spec is resolved); or `{script: strategies/x.py, class: MyStrategy, params: {...}}`: a
/// Python class run in the sandbox (see [`crate::script`]).
#[derive(Clone, Debug, PartialEq, Serialize, JsonSchema)]
#[serde(untagged)]
pub enum StrategySpec {
    /// A built-in strategy.
    Builtin(StrategyConfig),
    /// A strategy of the user's own.
    User(UserStrategySpec),
    /// A Python class run in a sandboxed child process.
    Script(ScriptStrategySpec),
}

/// `strategy:` naming a strategy of the user's own.
#[derive(Clone, Debug, PartialEq, Deserialize, Serialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct UserStrategySpec {
    /// The name it was registered under.
    pub name: String,
    /// Its parameters, as its factory reads them.
    #[serde(default, skip_serializing_if = "serde_json::Value::is_null")]
    pub params: serde_json::Value,
}

/// How an error in a built-in's parameters starts (they are checked from a copy, so the YAML
/// parser cannot place them; [`parse_spec`] reports them at the `strategy:` line).
const STRATEGY_PARAMS: &str = "strategy.params: ";

impl<'de> Deserialize<'de> for StrategySpec {
    fn deserialize<D: serde::Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        // The shape decides: a `script` key is a script strategy; anything else is named.
        let value = serde_json::Value::deserialize(deserializer)?;
        if value.get("script").is_some() {
            return serde_json::from_value(value)
                .map(StrategySpec::Script)
                .map_err(serde::de::Error::custom);
        }
        let raw: UserStrategySpec =
            serde_json::from_value(value).map_err(serde::de::Error::custom)?;
        if !StrategyConfig::NAMES.contains(&raw.name.as_str()) {
            return Ok(StrategySpec::User(raw));
        }
        let mut map = serde_json::Map::new();
        map.insert("name".to_string(), serde_json::Value::String(raw.name));
        if !raw.params.is_null() {
            map.insert("params".to_string(), raw.params);
        }
        StrategyConfig::deserialize(serde_json::Value::Object(map))
            .map(StrategySpec::Builtin)
            .map_err(|e| serde::de::Error::custom(format!("{STRATEGY_PARAMS}{e}")))
    }
}

impl StrategySpec {
    /// The strategy's name in metadata and journals: as written in the spec (`sma_cross`), or
    /// `script:strategies/x.py:MyStrategy`.
    pub fn name(&self) -> String {
        match self {
            StrategySpec::Builtin(c) => c.name().to_string(),
            StrategySpec::User(u) => u.name.clone(),
            StrategySpec::Script(s) => format!("script:{}:{}", s.script, s.class),
        }
    }

    /// The built-in's configuration, if it is one.
    pub fn builtin(&self) -> Option<&StrategyConfig> {
        match self {
            StrategySpec::Builtin(c) => Some(c),
            StrategySpec::User(_) | StrategySpec::Script(_) => None,
        }
    }

    /// The built-in's parameters, a user strategy's or the script's `params`, for labels.
    pub fn params_value(&self) -> serde_json::Value {
        match self {
            StrategySpec::Builtin(c) => serde_json::to_value(c)
                .ok()
                .and_then(|v| v.get("params").cloned())
                .unwrap_or(serde_json::Value::Null),
            StrategySpec::User(u) => u.params.clone(),
            StrategySpec::Script(s) => serde_json::Value::Object(s.params.clone()),
        }
    }
}

impl From<StrategyConfig> for StrategySpec {
    fn from(config: StrategyConfig) -> Self {
        StrategySpec::Builtin(config)
    }
}

/// `backtest` replays historical data on a simulated clock; `paper` runs the same engine on a
/// live feed (`feed:`) on the wall clock, with simulated fills.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Deserialize, Serialize, JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum Mode {
    Backtest,
    Paper,
}

/// `instruments[]`.
#[derive(Clone, Debug, PartialEq, Deserialize, Serialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct InstrumentSpec {
    /// Ticker, unique within the spec.
    pub symbol: String,
    /// Decimal places of prices (0–9).
    pub price_precision: u8,
    /// Decimal places of quantities (0–9).
    pub size_precision: u8,
    /// Price increment; default one unit of the last price decimal.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(with = "Option<DecimalSchema>")]
    pub tick_size: Option<Decimal>,
    /// Quantity increment; default one unit of the last size decimal.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(with = "Option<DecimalSchema>")]
    pub lot_size: Option<Decimal>,
    /// Smallest order size; default the lot size.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(with = "Option<DecimalSchema>")]
    pub min_quantity: Option<Decimal>,
    /// Fee on resting (maker) fills in bps; with `taker_fee_bps`, overrides `execution.fee_bps`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(with = "Option<DecimalSchema>")]
    pub maker_fee_bps: Option<Decimal>,
    /// Fee on market and stop (taker) fills in bps.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(with = "Option<DecimalSchema>")]
    pub taker_fee_bps: Option<Decimal>,
}

/// `data[]`: one bar file per instrument.
#[derive(Clone, Debug, PartialEq, Deserialize, Serialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct DataSpec {
    /// The instrument the bars belong to.
    pub symbol: String,
    /// Bar file, relative to the spec file (or absolute).
    pub path: String,
    /// `csv`, `parquet` or `arrow`; default from the file extension.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub format: Option<String>,
}

/// `account.type`.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Deserialize, Serialize, JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum AccountType {
    /// Shorting allowed, no buying-power check; a margin call (`account.margin`) stops
    /// trading and closes positions when equity falls to the maintenance margin.
    #[default]
    Margin,
    /// No shorting; buys need cash, counting what working orders will take.
    Cash,
}

fn default_currency() -> String {
    "USD".to_string()
}

/// `account:`.
#[derive(Clone, Debug, PartialEq, Deserialize, Serialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct AccountSpec {
    /// Starting cash, positive.
    #[schemars(with = "DecimalSchema")]
    pub initial_cash: Decimal,
    /// Account and quote currency (default USD).
    #[serde(default = "default_currency")]
    pub currency: String,
    /// `margin` (default) or `cash`.
    #[serde(default, rename = "type")]
    pub kind: AccountType,
    /// The maintenance-margin rule of a margin account (default: a margin call that closes
    /// every position when equity reaches 0).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub margin: Option<MarginConfig>,
}

fn default_venue() -> String {
    "sim".to_string()
}

/// A run spec. See the module documentation for an example.
#[derive(Clone, Debug, PartialEq, Deserialize, Serialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct RunSpec {
    /// A label for the run (shown in lists and reports).
    pub name: String,
    /// Free text.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub description: Option<String>,
    /// `backtest` or `paper`.
    pub mode: Mode,
    /// A venue label for metadata (default `sim`).
    #[serde(default = "default_venue")]
    pub venue: String,
    pub instruments: Vec<InstrumentSpec>,
    /// The bar files: required by a backtest and a paper run's `replay` feed.
    #[serde(default)]
    pub data: Vec<DataSpec>,
    /// A built-in (`{name, params}`) or a sandboxed script (`{script, class, params}`).
    pub strategy: StrategySpec,
    #[serde(default)]
    pub execution: ExecutionConfig,
    pub account: AccountSpec,
    #[serde(default)]
    pub risk: RiskConfig,
    /// Paper runs: where the market data comes from (see [`crate::paper::FeedSpec`]).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub feed: Option<crate::paper::FeedSpec>,
    /// Paper runs: stop at this time (RFC 3339, e.g. `2026-12-31T00:00:00Z`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub stop_at: Option<String>,
    /// Paper runs: write `state/snapshot.json` every this many events (default 1000), at most
    /// once per [`SNAPSHOT_INTERVAL`](crate::paper::SNAPSHOT_INTERVAL) of wall time.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub snapshot_every: Option<u64>,
    /// Paper runs: refuse orders (`risk.stale_data`) on data older than this (`90s`, `5m`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_data_age: Option<String>,
    /// Paper runs: accept orders submitted from outside the strategy (a workflow's `order`
    /// node with `paper_run:`, `tradeloom order`): read from the run folder's
    /// `state/orders/inbox/`, recorded as inputs, checked by the kill switch and pre-trade risk
    /// like the strategy's own. Default false.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub external_orders: Option<bool>,
    /// Backtests: run only the bars in this time range (walk-forward sweeps set it); the data
    /// files are still read, checked and hashed whole.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub window: Option<WindowSpec>,
}

/// `window:` of a backtest: `start` (inclusive) and `end` (exclusive), each a date
/// (`2010-01-01`, midnight UTC) or an RFC 3339 time; either may be left out.
#[derive(Clone, Debug, Default, PartialEq, Eq, Deserialize, Serialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct WindowSpec {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub start: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub end: Option<String>,
}

/// `window:` checked: the bars a backtest runs are those with `start <= ts < end`.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct BarWindow {
    pub start: Option<UnixNanos>,
    pub end: Option<UnixNanos>,
}

impl BarWindow {
    /// Whether a bar at `ts` is inside the window.
    pub fn contains(&self, ts: UnixNanos) -> bool {
        self.start.is_none_or(|s| ts >= s) && self.end.is_none_or(|e| ts < e)
    }
}

/// A date (`2010-01-01`, midnight UTC) or an RFC 3339 time.
pub fn parse_time(text: &str) -> Option<UnixNanos> {
    if let Some(t) = parse_rfc3339(text) {
        return Some(t);
    }
    let date = chrono::NaiveDate::parse_from_str(text.trim(), "%Y-%m-%d").ok()?;
    let nanos = date.and_hms_opt(0, 0, 0)?.and_utc().timestamp_nanos_opt()?;
    Some(UnixNanos(nanos))
}

/// The paper-run settings of a spec, checked.
#[derive(Clone, Debug, PartialEq)]
pub struct PaperSettings {
    /// `feed:`.
    pub feed: crate::paper::FeedSpec,
    /// `stop_at:`.
    pub stop_at: Option<UnixNanos>,
    /// `snapshot_every:` (default [`DEFAULT_SNAPSHOT_EVERY`]).
    pub snapshot_every: u64,
    /// `max_data_age:`.
    pub max_data_age: Option<std::time::Duration>,
    /// `external_orders:` (default false).
    pub external_orders: bool,
}

/// Events between two snapshots of a paper run when the spec does not say.
pub const DEFAULT_SNAPSHOT_EVERY: u64 = 1000;

/// The units `max_data_age:` accepts.
const DATA_AGE: DurationSyntax = DurationSyntax {
    units: &[MILLISECONDS, SECONDS, MINUTES, HOURS],
    examples: &["90s", "5m", "500ms"],
};

impl RunSpec {
    /// The providers of the run for `connectivity_readiness.json`: the venue and each data file.
    /// A backtest reads local files and trades on the simulated venue, so none needs a variable
    /// or has an endpoint to probe.
    pub fn connectivity_providers(&self) -> Vec<Provider> {
        let mut providers = vec![Provider::local(
            format!("venue:{}", self.venue),
            ProviderKind::Venue,
        )];
        providers.extend(
            self.data
                .iter()
                .map(|d| Provider::local(format!("data:{}", d.symbol), ProviderKind::Data)),
        );
        providers
    }
}

/// One data source, resolved.
#[derive(Clone, Debug, PartialEq)]
pub struct DataSource {
    pub instrument: InstrumentId,
    /// As written in the spec.
    pub given: String,
    /// Resolved against the spec's folder.
    pub path: PathBuf,
    pub format: Option<DataFormat>,
}

/// A spec checked and resolved into what the engine and the loaders need.
#[derive(Clone, Debug)]
pub struct ResolvedSpec {
    pub spec: RunSpec,
    /// The spec file as given on the command line.
    pub path: PathBuf,
    /// The spec file's text.
    pub text: String,
    pub instruments: Vec<Instrument>,
    pub data: Vec<DataSource>,
    pub engine: EngineConfig,
    /// The paper settings (`Some` exactly when `mode: paper`).
    pub paper: Option<PaperSettings>,
    /// `window:` (a backtest runs only the bars inside it).
    pub window: BarWindow,
    /// The strategies of the user's own the spec may name (empty for `tradeloom run`).
    pub user_strategies: UserStrategies,
    /// The script of `strategy: {script: …}`, checked (`None` otherwise).
    pub script: Option<ResolvedScript>,
}

impl ResolvedSpec {
    /// The run's strategy instances, as the spec says; errors name the parameter.
    pub fn build_strategies(&self) -> Result<Strategies, RunError> {
        let place = || self.path.display().to_string();
        let name = &self.spec.strategy.name();
        match &self.spec.strategy {
            StrategySpec::Builtin(config) => {
                config.build(&self.instruments).map_err(|e| RunError::Spec {
                    place: place(),
                    message: format!("{e} (strategy `{name}`)"),
                })
            }
            StrategySpec::User(user) => {
                match self
                    .user_strategies
                    .build(name, &user.params, &self.instruments)
                {
                    Some(built) => built.map_err(|message| RunError::Spec {
                        place: place(),
                        message: format!("{message} (strategy `{name}`)"),
                    }),
                    None => Err(RunError::Spec {
                        place: place(),
                        message: unknown_strategy(name, &self.user_strategies),
                    }),
                }
            }
            StrategySpec::Script(s) => Err(RunError::Spec {
                place: place(),
                message: format!(
                    "strategy.script `{}`: a script strategy is started by the runner (crate::script)",
                    s.script
                ),
            }),
        }
    }
}

/// `strategy.name: unknown variant …` listing the built-ins and the registered names.
fn unknown_strategy(name: &str, user: &UserStrategies) -> String {
    let quoted = |n: &str| format!("`{n}`");
    let builtins: Vec<String> = StrategyConfig::NAMES.iter().map(|n| quoted(n)).collect();
    let registered: Vec<String> = user.names().map(quoted).collect();
    let hint = if registered.is_empty() {
        " (a strategy of your own runs through tradeloom_runs::run_with_strategies, which \
         registers its name)"
            .to_string()
    } else {
        format!(", or one registered: {}", registered.join(", "))
    };
    format!(
        "strategy.name: unknown variant `{name}`, expected one of {}{hint}",
        builtins.join(", ")
    )
}

/// The JSON Schema of a run spec.
pub fn schema() -> serde_json::Value {
    serde_json::to_value(schemars::schema_for!(RunSpec)).unwrap_or(serde_json::Value::Null)
}

/// Reads, parses and validates a spec file (its strategy a built-in).
pub fn load_spec(path: &Path) -> Result<ResolvedSpec, RunError> {
    load_spec_with(path, &UserStrategies::new())
}

/// The text of the spec file at `path`; the error names the file.
pub fn read_spec_text(path: &Path) -> Result<String, RunError> {
    std::fs::read_to_string(path).map_err(|e| RunError::Spec {
        place: path.display().to_string(),
        message: format!("cannot read the spec: {e}"),
    })
}

/// Reads, parses and validates a spec file whose strategy may be one of `user`'s.
pub fn load_spec_with(path: &Path, user: &UserStrategies) -> Result<ResolvedSpec, RunError> {
    let text = read_spec_text(path)?;
    let spec = parse_spec(&text, path)?;
    resolve_with(spec, path, text, user)
}

/// Parses spec text; errors carry `path:line:column`.
pub fn parse_spec(text: &str, path: &Path) -> Result<RunSpec, RunError> {
    yaml_serde::from_str::<RunSpec>(text).map_err(|e| {
        // `feed:` is a tagged enum: its content is buffered, so an error inside it has no
        // position of its own. Parsed alone, its error is reported at its line.
        if let Ok(value) = yaml_serde::from_str::<yaml_serde::Value>(text)
            && let Some(feed) = value.get("feed")
            && let Err(fe) = yaml_serde::from_value::<crate::paper::FeedSpec>(feed.clone())
        {
            return spec_error(path, text, "feed", None, format!("feed: {fe}"));
        }
        // `strategy:` is read whole before its form (built-in or script) is known, so its
        // errors have no position of their own either: reported at its line.
        if let Ok(value) = yaml_serde::from_str::<yaml_serde::Value>(text)
            && let Some(strategy) = value.get("strategy")
            && let Err(se) = yaml_serde::from_value::<StrategySpec>(strategy.clone())
        {
            return spec_error(path, text, "strategy", None, se.to_string());
        }
        let line_column = e.location().map(|l| (l.line(), l.column()));
        // A built-in strategy's parameters are checked from a copy: reported at the
        // `strategy:` line (the parser's position would be the document's start).
        let shown = e.to_string();
        if let Some(at) = shown.find(STRATEGY_PARAMS) {
            let (_, message) =
                tradeloom_core::locate_error("", shown[at..].to_string(), line_column);
            return spec_error(path, text, "strategy", None, message);
        }
        let (place, message) =
            tradeloom_core::locate_error(&path.display().to_string(), e.to_string(), line_column);
        RunError::Spec { place, message }
    })
}

/// The 1-based line of the first line that mentions `key:` and, if given, `value`.
fn line_of(text: &str, key: &str, value: Option<&str>) -> Option<usize> {
    let pattern = format!("{key}:");
    let hit = |line: &str| line.contains(&pattern) && value.is_none_or(|v| line.contains(v));
    text.lines()
        .position(hit)
        .or_else(|| text.lines().position(|l| l.contains(&pattern)))
        .map(|i| i + 1)
}

fn spec_error(
    path: &Path,
    text: &str,
    key: &str,
    value: Option<&str>,
    message: String,
) -> RunError {
    let place = match line_of(text, key, value) {
        Some(line) => format!("{}:{line}", path.display()),
        None => path.display().to_string(),
    };
    RunError::Spec { place, message }
}

/// Semantic checks: everything the YAML shape cannot say (the strategy a built-in).
pub fn resolve(spec: RunSpec, path: &Path, text: String) -> Result<ResolvedSpec, RunError> {
    resolve_with(spec, path, text, &UserStrategies::new())
}

/// Semantic checks, the strategy a built-in or one of `user`'s.
pub fn resolve_with(
    spec: RunSpec,
    path: &Path,
    text: String,
    user: &UserStrategies,
) -> Result<ResolvedSpec, RunError> {
    let err = |key: &str, value: Option<&str>, message: String| {
        spec_error(path, &text, key, value, message)
    };
    if spec.name.trim().is_empty() {
        return Err(err("name", None, "name: must not be empty".to_string()));
    }
    let paper = paper_settings(&spec, &err)?;
    let needs_data = paper
        .as_ref()
        .is_none_or(|p| matches!(p.feed, crate::paper::FeedSpec::Replay(_)));
    let currency = Currency::from_code(&spec.account.currency).map_err(|e| {
        err(
            "currency",
            Some(&spec.account.currency),
            format!("account.currency: {e}"),
        )
    })?;
    let cash = spec.account.initial_cash;
    if cash.is_negative() || cash.is_zero() {
        let shown = cash.to_string();
        return Err(err(
            "initial_cash",
            None,
            format!("account.initial_cash: {shown} must be positive"),
        ));
    }
    if cash.decimals() > currency.precision() {
        return Err(err(
            "initial_cash",
            None,
            format!(
                "account.initial_cash: {cash} has more decimals than {currency} allows ({})",
                currency.precision()
            ),
        ));
    }
    let initial_cash = cash.to_money(currency);
    if spec.instruments.is_empty() {
        return Err(err(
            "instruments",
            None,
            "instruments: at least one instrument is required".to_string(),
        ));
    }
    let mut instruments = Vec::with_capacity(spec.instruments.len());
    let mut seen = BTreeSet::new();
    for (i, s) in spec.instruments.iter().enumerate() {
        let field = |f: &str| format!("instruments[{i}].{f}");
        let at = |f: &str, message: String| err(f, Some(&s.symbol), message);
        let symbol = Symbol::new(&s.symbol)
            .map_err(|e| at("symbol", format!("{}: {e}", field("symbol"))))?;
        if !seen.insert(s.symbol.clone()) {
            return Err(at(
                "symbol",
                format!("{}: duplicate symbol `{}`", field("symbol"), s.symbol),
            ));
        }
        let mut inst = Instrument::new(
            InstrumentId(i as u32),
            symbol,
            &spec.venue,
            s.price_precision,
            s.size_precision,
            currency,
        )
        .map_err(|e| at("precision", format!("instruments[{i}]: {e}")))?;
        if let Some(tick) = s.tick_size {
            inst.tick_size = tick
                .to_price(s.price_precision)
                .ok()
                .filter(|p| p.is_positive())
                .ok_or_else(|| {
                    at(
                        "tick_size",
                        format!(
                            "{}: {tick} must be positive with at most {} decimals",
                            field("tick_size"),
                            s.price_precision
                        ),
                    )
                })?;
        }
        for (name, value, target) in [
            ("lot_size", s.lot_size, &mut inst.lot_size),
            ("min_quantity", s.min_quantity, &mut inst.min_quantity),
        ] {
            if let Some(v) = value {
                *target = v
                    .to_quantity(s.size_precision)
                    .ok()
                    .filter(|q| !q.is_zero())
                    .ok_or_else(|| {
                        at(
                            name,
                            format!(
                                "{}: {v} must be positive with at most {} decimals",
                                field(name),
                                s.size_precision
                            ),
                        )
                    })?;
            }
        }
        if s.lot_size.is_some() && s.min_quantity.is_none() {
            inst.min_quantity = inst.lot_size;
        }
        for (name, value, target) in [
            ("maker_fee_bps", s.maker_fee_bps, &mut inst.maker_fee),
            ("taker_fee_bps", s.taker_fee_bps, &mut inst.taker_fee),
        ] {
            if let Some(v) = value {
                *target = v
                    .to_bps()
                    .map_err(|e| at(name, format!("{}: {e}", field(name))))?;
            }
        }
        instruments.push(inst);
    }
    let spec_dir = path.parent().unwrap_or(Path::new("."));
    let mut data = Vec::with_capacity(spec.data.len());
    let mut covered = BTreeSet::new();
    for (i, d) in spec.data.iter().enumerate() {
        let Some(inst) = instruments.iter().find(|x| x.symbol.as_str() == d.symbol) else {
            let known: Vec<&str> = instruments.iter().map(|x| x.symbol.as_str()).collect();
            return Err(err(
                "symbol",
                Some(&d.symbol),
                format!(
                    "data[{i}].symbol: unknown instrument `{}` (instruments: {})",
                    d.symbol,
                    known.join(", ")
                ),
            ));
        };
        if !covered.insert(inst.id) {
            return Err(err(
                "symbol",
                Some(&d.symbol),
                format!("data[{i}].symbol: a second data source for `{}`", d.symbol),
            ));
        }
        let format = match &d.format {
            Some(f) => Some(
                f.parse::<DataFormat>()
                    .map_err(|e| err("format", Some(f), format!("data[{i}].format: {e}")))?,
            ),
            None => None,
        };
        let given = PathBuf::from(&d.path);
        let resolved = if given.is_absolute() {
            given
        } else {
            spec_dir.join(given)
        };
        data.push(DataSource {
            instrument: inst.id,
            given: d.path.clone(),
            path: resolved,
            format,
        });
    }
    let missing = instruments.iter().find(|i| !covered.contains(&i.id));
    if let Some(missing) = missing.filter(|_| needs_data || !spec.data.is_empty()) {
        return Err(err(
            "data",
            None,
            format!("data: no data source for instrument `{}`", missing.symbol),
        ));
    }
    if let Some(name) = user.shadowed_builtin() {
        return Err(err(
            "name",
            None,
            format!(
                "strategy.name: `{name}` is a built-in strategy's name; register your strategy under another one"
            ),
        ));
    }
    let script = match &spec.strategy {
        StrategySpec::Builtin(config) => {
            config.build(&instruments).map_err(|e| {
                err(
                    "params",
                    None,
                    format!("{e} (strategy `{}`)", config.name()),
                )
            })?;
            None
        }
        StrategySpec::User(u) => match user.build(&u.name, &u.params, &instruments) {
            None => {
                return Err(err("name", Some(&u.name), unknown_strategy(&u.name, user)));
            }
            Some(Err(message)) => {
                return Err(err(
                    "params",
                    None,
                    format!("{message} (strategy `{}`)", u.name),
                ));
            }
            Some(Ok(_)) => None,
        },
        StrategySpec::Script(s) => {
            let mut script =
                resolve_script(s, spec_dir).map_err(|(key, message)| err(key, None, message))?;
            if spec.mode == Mode::Paper {
                // A paper run lasts until it is stopped: its script's calls and CPU time are
                // bounded, its whole life is not.
                if s.limits.is_some_and(|l| l.run_timeout_seconds.is_some()) {
                    return Err(err(
                        "run_timeout_seconds",
                        None,
                        "strategy.limits.run_timeout_seconds: a paper run's script has no \
                         wall-clock budget for the whole run (it runs until the run stops); \
                         remove it (call_timeout_ms and cpu_seconds still apply)"
                            .to_string(),
                    ));
                }
                script.limits.run_timeout_seconds = None;
            }
            Some(script)
        }
    };
    let account_kind = match spec.account.kind {
        AccountType::Margin => AccountKind::Margin,
        AccountType::Cash => AccountKind::Cash,
    };
    let mut engine = EngineConfig::resolve(&spec.execution, &spec.risk, account_kind, initial_cash)
        .map_err(|e| {
            let e = e.to_string();
            let key = e
                .split([':', '.'])
                .nth(1)
                .unwrap_or("execution")
                .trim()
                .to_string();
            err(&key, None, e)
        })?;
    engine.margin =
        MarginRule::resolve(spec.account.margin.as_ref(), account_kind).map_err(|e| {
            let e = e.to_string();
            let key = if e.contains("maintenance_pct") {
                "maintenance_pct"
            } else {
                "margin"
            };
            err(key, None, e)
        })?;
    engine.strategy_name = spec.strategy.name();
    let window = bar_window(&spec, &err)?;
    Ok(ResolvedSpec {
        spec,
        path: path.to_path_buf(),
        text,
        instruments,
        data,
        engine,
        paper,
        window,
        user_strategies: user.clone(),
        script,
    })
}

/// Checks `window:`: backtests only, times that parse, start before end.
fn bar_window(
    spec: &RunSpec,
    err: &dyn Fn(&str, Option<&str>, String) -> RunError,
) -> Result<BarWindow, RunError> {
    let Some(w) = &spec.window else {
        return Ok(BarWindow::default());
    };
    if spec.mode == Mode::Paper {
        return Err(err(
            "window",
            None,
            "window: only a backtest has `window:` (this spec has mode: paper)".to_string(),
        ));
    }
    let time = |field: &str, text: &Option<String>| -> Result<Option<UnixNanos>, RunError> {
        match text {
            None => Ok(None),
            Some(t) => parse_time(t).map(Some).ok_or_else(|| {
                err(
                    field,
                    None,
                    format!(
                        "window.{field}: `{t}` is not a date or an RFC 3339 time; expected e.g. \
                         `2010-01-01` or `2010-01-01T00:00:00Z`"
                    ),
                )
            }),
        }
    };
    let window = BarWindow {
        start: time("start", &w.start)?,
        end: time("end", &w.end)?,
    };
    if let (Some(s), Some(e)) = (window.start, window.end)
        && s >= e
    {
        return Err(err(
            "window",
            None,
            "window: `start` must be before `end`".to_string(),
        ));
    }
    Ok(window)
}

/// Checks the paper fields: `feed:` (required by and only allowed in a paper spec), `stop_at:`,
/// `snapshot_every:` and `max_data_age:`.
fn paper_settings(
    spec: &RunSpec,
    err: &dyn Fn(&str, Option<&str>, String) -> RunError,
) -> Result<Option<PaperSettings>, RunError> {
    if spec.mode == Mode::Backtest {
        let only_paper = [
            ("feed", spec.feed.is_some()),
            ("stop_at", spec.stop_at.is_some()),
            ("snapshot_every", spec.snapshot_every.is_some()),
            ("max_data_age", spec.max_data_age.is_some()),
            ("external_orders", spec.external_orders.is_some()),
        ];
        if let Some((field, _)) = only_paper.iter().find(|(_, given)| *given) {
            return Err(err(
                field,
                None,
                format!("{field}: only a paper run has `{field}:` (this spec has mode: backtest)"),
            ));
        }
        return Ok(None);
    }
    let Some(feed) = spec.feed.clone() else {
        return Err(err(
            "mode",
            Some("paper"),
            "feed: a paper run needs a `feed:` section, e.g. `feed: {type: replay, speed: max}`"
                .to_string(),
        ));
    };
    if matches!(feed, crate::paper::FeedSpec::Replay(_)) && spec.data.is_empty() {
        return Err(err(
            "feed",
            None,
            "data: a `replay` feed replays the spec's `data:` files; there are none".to_string(),
        ));
    }
    let stop_at = match &spec.stop_at {
        Some(text) => Some(parse_rfc3339(text).ok_or_else(|| {
            err(
                "stop_at",
                None,
                format!(
                    "stop_at: `{text}` is not an RFC 3339 time; expected e.g. `2026-12-31T00:00:00Z`"
                ),
            )
        })?),
        None => None,
    };
    let snapshot_every = match spec.snapshot_every {
        Some(0) => {
            return Err(err(
                "snapshot_every",
                None,
                "snapshot_every: must be at least 1 (events between snapshots)".to_string(),
            ));
        }
        Some(n) => n,
        None => DEFAULT_SNAPSHOT_EVERY,
    };
    let max_data_age = match &spec.max_data_age {
        Some(text) => {
            let ms = DATA_AGE
                .parse_ms(text)
                .map_err(|e| err("max_data_age", None, format!("max_data_age: {e}")))?;
            Some(std::time::Duration::from_millis(ms))
        }
        None => None,
    };
    Ok(Some(PaperSettings {
        feed,
        stop_at,
        snapshot_every,
        max_data_age,
        external_orders: spec.external_orders.unwrap_or(false),
    }))
}

/// An RFC 3339 time (`2026-12-31T00:00:00Z`, any offset) as nanoseconds since the epoch.
pub fn parse_rfc3339(text: &str) -> Option<UnixNanos> {
    let t = chrono::DateTime::parse_from_rfc3339(text).ok()?;
    let nanos = t.timestamp_nanos_opt()?;
    Some(UnixNanos(nanos))
}

#[cfg(test)]
mod tests {
    use super::*;

    const GOOD: &str = "name: t
mode: backtest
instruments: [{symbol: GOOG, price_precision: 2, size_precision: 0}]
data: [{symbol: GOOG, path: goog.csv}]
strategy: {name: sma_cross, params: {fast: 10, slow: 20, quantity: 10}}
execution: {fill_model: next_open, fee_bps: 0, slippage_bps: 0}
account: {initial_cash: 100000, currency: USD}
risk: {max_drawdown_pct: 50}
";

    fn check(text: &str) -> Result<ResolvedSpec, RunError> {
        let path = Path::new("spec.yaml");
        resolve(parse_spec(text, path)?, path, text.to_string())
    }

    fn error_of(text: &str) -> String {
        match check(text) {
            Ok(_) => panic!("expected an error"),
            Err(e) => e.to_string(),
        }
    }

    #[test]
    fn accepts_the_example() {
        let r = check(GOOD).unwrap();
        assert_eq!(r.instruments.len(), 1);
        assert_eq!(r.engine.initial_cash.to_string(), "100000.00");
        assert_eq!(r.data[0].path, Path::new("goog.csv"));
        assert_eq!(r.engine.strategy_name, "sma_cross");
    }

    #[test]
    fn unknown_field_has_line_and_column() {
        let e = error_of(&GOOD.replace(
            "risk: {max_drawdown_pct: 50}",
            "risk: {max_drawdown_pct: 50}\nbogus: 1",
        ));
        assert!(e.starts_with("spec.yaml:9:1: unknown field `bogus`"), "{e}");
    }

    #[test]
    fn unknown_strategy_and_parameter() {
        let e = error_of(&GOOD.replace("sma_cross", "sma_crossx"));
        assert!(e.starts_with("spec.yaml:5:"), "{e}");
        assert!(e.contains("unknown variant `sma_crossx`"), "{e}");
        let e = error_of(&GOOD.replace("fast: 10", "fst: 10"));
        assert!(e.starts_with("spec.yaml:5:"), "{e}");
        assert!(e.contains("unknown field `fst`"), "{e}");
        let e = error_of(&GOOD.replace("slow: 20", "slow: 5"));
        assert!(
            e.contains("strategy.params.slow: 5 must be greater than fast (10)"),
            "{e}"
        );
    }

    #[test]
    fn semantic_errors_name_the_field_and_line() {
        let e = error_of(&GOOD.replace("initial_cash: 100000", "initial_cash: -5"));
        assert_eq!(e, "spec.yaml:7: account.initial_cash: -5 must be positive");
        let e = error_of(&GOOD.replace("mode: backtest", "mode: paper"));
        assert_eq!(
            e,
            "spec.yaml:2: feed: a paper run needs a `feed:` section, e.g. `feed: {type: replay, speed: max}`"
        );
        let e = error_of(&GOOD.replace("{symbol: GOOG, path", "{symbol: GOG, path"));
        assert_eq!(
            e,
            "spec.yaml:4: data[0].symbol: unknown instrument `GOG` (instruments: GOOG)"
        );
        let e = error_of(&GOOD.replace("price_precision: 2", "price_precision: 12"));
        assert!(
            e.starts_with("spec.yaml:3: instruments[0]: price_precision 12 is above the maximum 9"),
            "{e}"
        );
        let e = error_of(&GOOD.replace("next_open", "close"));
        assert!(
            e.contains("unknown variant `close`, expected `bar_close` or `next_open`"),
            "{e}"
        );
        let e = error_of(&GOOD.replace("quantity: 10", "quantity: 10.5"));
        assert!(e.contains("strategy.params.quantity: 10.5 has 1 decimal places; the instrument's size_precision is 0"), "{e}");
    }

    #[test]
    fn margin_rule_is_resolved_and_bad_values_name_the_field() {
        let r = check(GOOD).unwrap();
        assert_eq!(
            r.engine.margin,
            MarginRule::default(),
            "default: call at zero equity"
        );
        let with = |margin: &str| {
            GOOD.replace(
                "account: {initial_cash: 100000, currency: USD}",
                &format!("account:\n  initial_cash: 100000\n  margin: {margin}"),
            )
        };
        let r = check(&with("{maintenance_pct: 25, on_call: halt}")).unwrap();
        assert_eq!(r.engine.margin.maintenance_pct_raw, 25_000_000_000);
        assert_eq!(
            r.engine.margin.on_call,
            tradeloom_engine::MarginCallAction::Halt
        );
        let e = error_of(&with("{maintenance_pct: 100}"));
        assert_eq!(
            e,
            "spec.yaml:9: account.margin.maintenance_pct: 100 must be at least 0 and below 100"
        );
        let e = error_of(&with("{maintenance_pct: -1}"));
        assert!(
            e.contains("account.margin.maintenance_pct: -1 must be"),
            "{e}"
        );
        let e = error_of(&with("{on_call: sell}"));
        assert!(e.starts_with("spec.yaml:9:"), "{e}");
        assert!(
            e.contains("unknown variant `sell`, expected `liquidate` or `halt`"),
            "{e}"
        );
        let e = error_of(&with("{maintenance: 5}"));
        assert!(e.contains("unknown field `maintenance`"), "{e}");
        let e = error_of(
            &with("{maintenance_pct: 5}")
                .replace("initial_cash: 100000", "initial_cash: 100000\n  type: cash"),
        );
        assert_eq!(
            e,
            "spec.yaml:10: account.margin: only a margin account has a margin rule (account.type is cash)"
        );
    }

    fn paper(extra: &str) -> String {
        format!("{}{extra}", GOOD.replace("mode: backtest", "mode: paper"))
    }

    #[test]
    fn a_paper_spec_is_resolved_with_its_settings() {
        let r = check(&paper(
            "feed: {type: replay, speed: max}\nstop_at: 2026-12-31T00:00:00Z\nmax_data_age: 90s\n",
        ))
        .unwrap();
        let p = r.paper.unwrap();
        assert_eq!(
            p.feed,
            crate::paper::FeedSpec::Replay(crate::paper::ReplayFeedSpec {
                speed: crate::paper::ReplaySpeed::Max
            })
        );
        assert_eq!(p.stop_at, Some(UnixNanos(1_798_675_200_000_000_000)));
        assert_eq!(p.snapshot_every, DEFAULT_SNAPSHOT_EVERY);
        assert_eq!(p.max_data_age, Some(std::time::Duration::from_secs(90)));
        let r = check(&paper(
            "feed: {type: replay, speed: 60}\nsnapshot_every: 5\n",
        ))
        .unwrap();
        assert_eq!(r.paper.unwrap().snapshot_every, 5);
        assert!(check(GOOD).unwrap().paper.is_none());
    }

    #[test]
    fn paper_fields_name_the_line_and_field() {
        let e = error_of(&paper("feed: {type: replay}\nstop_at: tomorrow\n"));
        assert_eq!(
            e,
            "spec.yaml:10: stop_at: `tomorrow` is not an RFC 3339 time; expected e.g. `2026-12-31T00:00:00Z`"
        );
        let e = error_of(&paper("feed: {type: replay}\nmax_data_age: 5 minutes\n"));
        assert!(
            e.starts_with("spec.yaml:10: max_data_age: invalid duration `5 minutes`"),
            "{e}"
        );
        let e = error_of(&paper("feed: {type: replay}\nsnapshot_every: 0\n"));
        assert_eq!(
            e,
            "spec.yaml:10: snapshot_every: must be at least 1 (events between snapshots)"
        );
        let e = error_of(&format!("{GOOD}feed: {{type: replay}}\n"));
        assert_eq!(
            e,
            "spec.yaml:9: feed: only a paper run has `feed:` (this spec has mode: backtest)"
        );
        let e = error_of(&format!("{GOOD}stop_at: 2026-12-31T00:00:00Z\n"));
        assert_eq!(
            e,
            "spec.yaml:9: stop_at: only a paper run has `stop_at:` (this spec has mode: backtest)"
        );
        let e = error_of(&paper("feed: {type: replay, speed: fast}\n"));
        assert!(e.starts_with("spec.yaml:9: feed: "), "{e}");
        assert!(
            e.contains("speed: expected `max` or a positive number"),
            "{e}"
        );
        let no_data =
            paper("feed: {type: replay}\n").replace("data: [{symbol: GOOG, path: goog.csv}]\n", "");
        let e = error_of(&no_data);
        assert_eq!(
            e,
            "spec.yaml:8: data: a `replay` feed replays the spec's `data:` files; there are none"
        );
        // Other feeds need no data.
        let scan = paper("feed: {type: scan_dir, path: scans}\n")
            .replace("data: [{symbol: GOOG, path: goog.csv}]\n", "");
        assert!(check(&scan).unwrap().data.is_empty());
        let e = error_of(&paper("feed: {type: replay, sped: 1}\n"));
        assert!(
            e.starts_with("spec.yaml:9: feed: unknown field `sped`"),
            "{e}"
        );
        let e = error_of(&paper("feed: {type: carrier_pigeon}\n"));
        assert!(
            e.starts_with("spec.yaml:9: feed: unknown variant `carrier_pigeon`"),
            "{e}"
        );
    }

    #[test]
    fn a_window_is_checked_and_resolved() {
        let r = check(&format!(
            "{GOOD}window: {{start: 2006-01-01, end: 2007-01-01T12:00:00Z}}\n"
        ))
        .unwrap();
        assert_eq!(r.window.start, parse_time("2006-01-01"));
        assert_eq!(r.window.start, Some(UnixNanos(1_136_073_600_000_000_000)));
        assert!(r.window.contains(UnixNanos(1_136_073_600_000_000_000)));
        assert!(
            !r.window.contains(r.window.end.unwrap()),
            "the end is excluded"
        );
        assert_eq!(check(GOOD).unwrap().window, BarWindow::default());
        let e = error_of(&format!("{GOOD}window: {{start: yesterday}}\n"));
        assert_eq!(
            e,
            "spec.yaml:9: window.start: `yesterday` is not a date or an RFC 3339 time; expected e.g. `2010-01-01` or `2010-01-01T00:00:00Z`"
        );
        let e = error_of(&format!(
            "{GOOD}window: {{start: 2007-01-01, end: 2006-01-01}}\n"
        ));
        assert_eq!(e, "spec.yaml:9: window: `start` must be before `end`");
        let e = error_of(&format!("{GOOD}window: {{begin: 2007-01-01}}\n"));
        assert!(e.contains("unknown field `begin`"), "{e}");
        let e = error_of(&paper(
            "feed: {type: replay}\nwindow: {start: 2007-01-01}\n",
        ));
        assert_eq!(
            e,
            "spec.yaml:10: window: only a backtest has `window:` (this spec has mode: paper)"
        );
    }

    #[test]
    fn schema_lists_the_fields() {
        let s = schema().to_string();
        for field in [
            "instruments",
            "fill_model",
            "max_drawdown_pct",
            "sma_cross",
            "feed",
            "stop_at",
            "snapshot_every",
            "max_data_age",
            "external_orders",
        ] {
            assert!(s.contains(field), "{field} missing from the schema");
        }
    }
}
