//! Policies for workflow `agent` nodes: a trading team's roles, and two tool users.
//!
//! A workflow agent gets one user message — the node's rendered prompt, plus a last line
//! `Inputs: {json}` when the node has inputs — and the tools its node lists. These policies read
//! only that message, the tools offered and the tool calls and results after it, so the same
//! request always gets the same answer. Every final answer is one JSON object (the workflow's
//! `json` output); numbers are integers, fractions are strings.
//!
//! | policy | answer |
//! | --- | --- |
//! | `analyst` | `{"stance": "bull"\|"bear"\|"neutral", "confidence": "0.50".."0.99", "symbol": "AAPL"\|null, "summary": "...", "data"?: {"bars", "last_bar", "last_close", "price", "headlines", "latest_news"}}` |
//! | `trader` | `{"action": "buy"\|"sell"\|"hold", "symbol": "AAPL"\|null, "quantity": 20, "bull": 4, "bear": 2, "rationale": "...", "price"?: "101.5"}` |
//! | `risk_manager` | `{"approved": true, "max_quantity": 100, "reason": "..."}` |
//! | `patcher` | calls `patch_workflow` once, then `{"patched": true\|false, "result": <tool result>}` |
//! | `calculator` | calls `calc` once, then `{"value": <result>}` |
//! | `skill_user` | calls the first `skill_*` tool offered once, then `{"result": <tool result>}` |
//!
//! What each reads from the message ("a field" is, in this order: a key of the `Inputs` JSON,
//! searched breadth-first through nested objects; a `"key": value` pair anywhere in the text; a
//! line `key: value`):
//! - `analyst`: with market tools offered (`get_bars`, `get_price`, `search_news`) and a
//!   `symbol`, first calls each of them once, in one step (`get_bars` for 5 bars, `search_news`
//!   for the symbol, 3 results). The side named by the first `argue the bull` / `argue the
//!   bear` (any case) is its stance; without one, the trend of the bars (last close above the
//!   first: bull, below: bear); without bars, the stance and confidence come from a hash of the
//!   message. The summary ends with what the tools showed, and `data` holds it (the number of
//!   bars and the date of the last, the last close, the price, the number of headlines and the
//!   newest one's time). The `symbol` field names the instrument.
//! - `trader`: counts the stances in the message — every `"stance": "<word>"` pair (so the
//!   outputs of analysts passed as inputs count), or, when there is none, the words
//!   `bull`/`bullish` and `bear`/`bearish`. More bull → buy, more bear → sell, a tie → hold;
//!   the quantity is 10 per stance of margin (0 for hold). With `get_price` / `get_portfolio`
//!   offered it first calls them (one step), answers the price, and cuts a buy to what 99 %
//!   of the cash pays for.
//! - `risk_manager`: the `quantity` field (an integer or integer text) against the `limit` or
//!   `max_quantity` field (default 100): approved when quantity ≤ limit; `max_quantity` is the
//!   limit. No quantity → not approved.
//! - `patcher`: with the `patch_workflow` tool offered and no result of it yet, calls it with
//!   the first fenced ```` ```json ```` block of the message (a JSON Patch array, or an object
//!   with `operations`); after the result answers `patched` (the result has `ir_version` and no
//!   `error`) with the result. Without the tool or a usable block it answers `{"patched":
//!   false, "reason": "..."}`.
//! - `calculator`: with the `calc` tool offered, calls it with the first line `calc: <expr>`;
//!   after the result answers `{"value": <its "value" or "result" field, else the whole
//!   result>}`, or `{"value": null, "error": ...}` when the tool failed. Without the tool or the
//!   line it answers `{"value": null, "reason": "..."}`.
//! - `skill_user`: with a tool named `skill_…` offered (a registered skill) and no result of it
//!   yet, calls the first one with the object of the first fenced ```` ```json ```` block of
//!   the message as its arguments; after the result answers `{"tool": <its name>, "result":
//!   <the result>}`. Without such a tool or block it answers `{"result": null, "reason":
//!   "..."}`.

use std::collections::{HashMap, VecDeque};

use serde_json::{Value, json};

use crate::completion::Reply;
use crate::hash::fnv1a;
use tradeloom_llm::{Message, Role};

/// A workflow agent's role.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum WorkflowRole {
    Analyst,
    Trader,
    RiskManager,
    Patcher,
    Calculator,
    SkillUser,
}

/// The risk manager's limit when the message states none.
const DEFAULT_LIMIT: u64 = 100;

/// Units traded per stance of margin between bull and bear.
const UNITS_PER_STANCE: u64 = 10;

impl WorkflowRole {
    /// The role a model name selects (`risk-manager` is accepted too).
    pub fn parse(name: &str) -> Option<WorkflowRole> {
        Some(match name {
            "analyst" => WorkflowRole::Analyst,
            "trader" => WorkflowRole::Trader,
            "risk_manager" | "risk-manager" => WorkflowRole::RiskManager,
            "patcher" => WorkflowRole::Patcher,
            "calculator" => WorkflowRole::Calculator,
            "skill_user" | "skill-user" => WorkflowRole::SkillUser,
            _ => return None,
        })
    }

    /// The next assistant turn for `messages`, with the tools named in `tools` offered.
    pub fn respond(self, messages: &[Message], tools: &[String]) -> Reply {
        let task = Task::read(messages);
        let offered = |name: &str| tools.iter().any(|tool| tool == name);
        match self {
            WorkflowRole::Analyst => match market_calls(&task, tools, ANALYST_TOOLS) {
                Some(calls) => calls,
                None => answer(analyst(&task)),
            },
            WorkflowRole::Trader => match market_calls(&task, tools, TRADER_TOOLS) {
                Some(calls) => calls,
                None => answer(trader(&task)),
            },
            WorkflowRole::RiskManager => answer(risk_manager(&task)),
            WorkflowRole::Patcher => patcher(&task, offered("patch_workflow")),
            WorkflowRole::Calculator => calculator(&task, offered("calc")),
            WorkflowRole::SkillUser => skill_user(&task, tools),
        }
    }
}

/// The market tools an analyst calls when offered, in this order.
const ANALYST_TOOLS: &[&str] = &["get_bars", "get_price", "search_news"];

/// The market tools a trader calls when offered, in this order.
const TRADER_TOOLS: &[&str] = &["get_price", "get_portfolio"];

/// Bars an analyst asks `get_bars` for.
const ANALYST_BARS: u64 = 5;

/// The first turn of a role with market tools: one call of each of `wanted` that is offered,
/// all in one step, for the task's symbol. `None` once any tool has answered, or when none is
/// offered or the task names no symbol.
fn market_calls(task: &Task, tools: &[String], wanted: &[&str]) -> Option<Reply> {
    if !task.results.is_empty() {
        return None;
    }
    let symbol = task.symbol()?;
    let calls: Vec<(String, Value)> = wanted
        .iter()
        .filter(|name| tools.iter().any(|t| t == *name))
        .map(|name| {
            let args = match *name {
                "get_bars" => json!({"symbol": symbol, "days": ANALYST_BARS}),
                "search_news" => json!({"query": symbol, "limit": 3}),
                "get_portfolio" => json!({}),
                _ => json!({ "symbol": symbol }),
            };
            ((*name).to_owned(), args)
        })
        .collect();
    (!calls.is_empty()).then(|| Reply::calls(calls))
}

/// A decimal text or number of a tool result as `f64` (the mock's own arithmetic; the book
/// stays exact on the server).
fn number(value: Option<&Value>) -> Option<f64> {
    match value? {
        Value::String(text) => text.trim().parse().ok(),
        Value::Number(n) => n.as_f64(),
        _ => None,
    }
}

/// What the market tools answered: the trend of the bars, the price, the headlines.
#[derive(Debug, Default)]
struct Evidence {
    /// First and last close of the bars.
    closes: Option<(f64, f64)>,
    bars: usize,
    /// Date of the last bar.
    last_bar: Option<String>,
    price: Option<f64>,
    headlines: Option<usize>,
    /// Timestamp of the newest headline.
    latest_news: Option<String>,
    cash: Option<f64>,
}

impl Evidence {
    fn of(task: &Task) -> Evidence {
        let mut evidence = Evidence::default();
        if let Some(bars) = task
            .result_of("get_bars")
            .and_then(|r| r.get("bars"))
            .and_then(Value::as_array)
        {
            evidence.bars = bars.len();
            let close = |bar: Option<&Value>| number(bar.and_then(|b| b.get("close")));
            if let (Some(first), Some(last)) = (close(bars.first()), close(bars.last())) {
                evidence.closes = Some((first, last));
            }
            evidence.last_bar = bars
                .iter()
                .filter_map(|b| b.get("date").and_then(Value::as_str))
                .max()
                .map(str::to_owned);
        }
        evidence.price = number(task.result_of("get_price").and_then(|r| r.get("price")));
        evidence.headlines = task
            .result_of("search_news")
            .and_then(|r| r.get("results"))
            .and_then(Value::as_array)
            .map(Vec::len);
        evidence.latest_news = task
            .result_of("search_news")
            .and_then(|r| r.get("results"))
            .and_then(Value::as_array)
            .and_then(|items| {
                items
                    .iter()
                    .filter_map(|i| i.get("timestamp").and_then(Value::as_str))
                    .max()
                    .map(str::to_owned)
            });
        evidence.cash = number(task.result_of("get_portfolio").and_then(|r| r.get("cash")));
        evidence
    }

    /// The stance the bars' trend gives: up is bull, down is bear (two bars at least).
    fn trend(&self) -> Option<Stance> {
        let (first, last) = self.closes?;
        if self.bars < 2 || first == last {
            return None;
        }
        Some(if last > first {
            Stance::Bull
        } else {
            Stance::Bear
        })
    }

    fn is_empty(&self) -> bool {
        self.closes.is_none()
            && self.price.is_none()
            && self.headlines.is_none()
            && self.cash.is_none()
    }

    /// The figures as JSON (the analyst's `data`).
    fn to_value(&self) -> Value {
        json!({
            "bars": self.bars,
            "last_bar": self.last_bar,
            "last_close": self.closes.map(|(_, last)| last.to_string()),
            "price": self.price.map(|p| p.to_string()),
            "headlines": self.headlines,
            "latest_news": self.latest_news,
        })
    }

    fn describe(&self) -> String {
        let mut parts = Vec::new();
        if let Some((first, last)) = self.closes {
            parts.push(format!("closes {first} → {last} over {} bars", self.bars));
        }
        if let Some(price) = self.price {
            parts.push(format!("price {price}"));
        }
        if let Some(n) = self.headlines {
            parts.push(format!("{n} headline(s)"));
        }
        if let Some(cash) = self.cash {
            parts.push(format!("cash {cash}"));
        }
        parts.join(", ")
    }
}

fn answer(value: Value) -> Reply {
    Reply::answer(value.to_string())
}

/// The last user message and what happened after it.
#[derive(Debug, Default)]
struct Task {
    /// The last user message.
    text: String,
    /// The JSON after the message's last `Inputs:` line start, when it parses.
    inputs: Option<Value>,
    /// Tool results after the message, with the name of the tool each answers, in order.
    results: Vec<(String, Value)>,
}

impl Task {
    fn read(messages: &[Message]) -> Task {
        let Some(last_user) = messages.iter().rposition(|m| m.role == Role::User) else {
            return Task::default();
        };
        let text = messages[last_user].content.clone().unwrap_or_default();
        let inputs = inputs_of(&text);
        let mut names: HashMap<&str, &str> = HashMap::new();
        let mut results = Vec::new();
        for message in &messages[last_user + 1..] {
            match message.role {
                Role::Assistant => {
                    for call in &message.tool_calls {
                        names.insert(call.id.as_str(), call.name.as_str());
                    }
                }
                Role::Tool => {
                    let name = message
                        .tool_call_id
                        .as_deref()
                        .and_then(|id| names.get(id))
                        .copied()
                        .unwrap_or_default();
                    let content = message.content.as_deref().unwrap_or_default();
                    let result = serde_json::from_str(content)
                        .unwrap_or_else(|_| Value::String(content.to_owned()));
                    results.push((name.to_owned(), result));
                }
                Role::System | Role::User => {}
            }
        }
        Task {
            text,
            inputs,
            results,
        }
    }

    /// The first result of tool `name`.
    fn result_of(&self, name: &str) -> Option<&Value> {
        self.results
            .iter()
            .find(|(tool, _)| tool == name)
            .map(|(_, result)| result)
    }

    /// The first of: key `key` in the inputs (breadth-first), `"key": value` in the text, a
    /// line `key: value` (the value as JSON when it parses, else as text).
    fn field(&self, key: &str) -> Option<Value> {
        self.inputs
            .as_ref()
            .and_then(|inputs| find_key(inputs, key))
            .cloned()
            .or_else(|| quoted_pair(&self.text, key))
            .or_else(|| {
                line_value(&self.text, key).map(|value| {
                    serde_json::from_str(value).unwrap_or_else(|_| Value::String(value.to_owned()))
                })
            })
    }

    /// The `symbol` field: a string's first word, without surrounding punctuation.
    fn symbol(&self) -> Option<String> {
        let value = self.field("symbol")?;
        let text = value.as_str()?;
        let word = text
            .split_whitespace()
            .next()?
            .trim_matches(|c: char| !(c.is_alphanumeric() || c == '.' || c == '-' || c == '_'));
        (!word.is_empty()).then(|| word.to_owned())
    }

    /// A field as a whole number (a JSON integer or integer text).
    fn whole(&self, key: &str) -> Option<u64> {
        match self.field(key)? {
            Value::Number(number) => number.as_u64(),
            Value::String(text) => text.trim().parse().ok(),
            _ => None,
        }
    }
}

/// The JSON after the last line that starts with `Inputs:`: the rest of the message, or else
/// that line alone.
fn inputs_of(text: &str) -> Option<Value> {
    let mut start = None;
    let mut offset = 0;
    for line in text.split_inclusive('\n') {
        if let Some(rest) = line.trim_start().strip_prefix("Inputs:") {
            start = Some(offset + line.len() - rest.len());
        }
        offset += line.len();
    }
    let rest = &text[start?..];
    serde_json::from_str(rest.trim())
        .ok()
        .or_else(|| serde_json::from_str(rest.lines().next()?.trim()).ok())
}

/// The value of the first `key` in `value`, nearest the top first.
fn find_key<'a>(value: &'a Value, key: &str) -> Option<&'a Value> {
    let mut queue = VecDeque::from([value]);
    while let Some(value) = queue.pop_front() {
        match value {
            Value::Object(map) => {
                if let Some(found) = map.get(key) {
                    return Some(found);
                }
                queue.extend(map.values());
            }
            Value::Array(items) => queue.extend(items),
            _ => {}
        }
    }
    None
}

/// The JSON value after the first `"key":` in `text` that is followed by one.
fn quoted_pair(text: &str, key: &str) -> Option<Value> {
    quoted_values(text, key).into_iter().next()
}

/// Every JSON value that follows `"key":` in `text`, in order.
fn quoted_values(text: &str, key: &str) -> Vec<Value> {
    let needle = format!("\"{key}\"");
    text.match_indices(&needle)
        .filter_map(|(at, _)| {
            let rest = text[at + needle.len()..].trim_start().strip_prefix(':')?;
            serde_json::Deserializer::from_str(rest.trim_start())
                .into_iter::<Value>()
                .next()?
                .ok()
        })
        .collect()
}

/// The trimmed value of the first line `key: value` (key case-insensitive, `_` or space).
fn line_value<'a>(text: &'a str, key: &str) -> Option<&'a str> {
    text.lines().find_map(|line| {
        let (name, value) = line.split_once(':')?;
        let name = name.trim().to_ascii_lowercase().replace(' ', "_");
        let value = value.trim();
        (name == key && !value.is_empty()).then_some(value)
    })
}

/// A side of the debate.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Stance {
    Bull,
    Bear,
    Neutral,
}

impl Stance {
    fn as_str(self) -> &'static str {
        match self {
            Stance::Bull => "bull",
            Stance::Bear => "bear",
            Stance::Neutral => "neutral",
        }
    }

    fn parse(word: &str) -> Option<Stance> {
        match word.to_ascii_lowercase().as_str() {
            "bull" | "bullish" => Some(Stance::Bull),
            "bear" | "bearish" => Some(Stance::Bear),
            "neutral" => Some(Stance::Neutral),
            _ => None,
        }
    }

    /// Talking points, one picked by hash.
    fn points(self) -> &'static [&'static str] {
        match self {
            Stance::Bull => &[
                "earnings momentum is intact",
                "the valuation leaves room to re-rate",
                "the trend is up on rising volume",
                "the news flow is improving",
            ],
            Stance::Bear => &[
                "margins are under pressure",
                "the valuation already prices in the good news",
                "the trend is rolling over",
                "headline risk is rising",
            ],
            Stance::Neutral => &["the signals are mixed", "there is no clear edge either way"],
        }
    }
}

/// Stances counted in the text: `"stance": "<word>"` pairs, or the bare words when none.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
struct Tally {
    bull: u64,
    bear: u64,
    neutral: u64,
}

impl Tally {
    fn of(text: &str) -> Tally {
        let mut tally = Tally::default();
        let mut any = false;
        for value in quoted_values(text, "stance") {
            if let Some(stance) = value.as_str().and_then(Stance::parse) {
                tally.add(stance);
                any = true;
            }
        }
        if !any {
            text.split(|c: char| !c.is_ascii_alphabetic())
                .filter_map(Stance::parse)
                .filter(|stance| *stance != Stance::Neutral)
                .for_each(|stance| tally.add(stance));
        }
        tally
    }

    fn add(&mut self, stance: Stance) {
        match stance {
            Stance::Bull => self.bull += 1,
            Stance::Bear => self.bear += 1,
            Stance::Neutral => self.neutral += 1,
        }
    }
}

/// The side after the first `argue the bull` / `argue the bear`.
fn argued_side(text: &str) -> Option<Stance> {
    let lower = text.to_lowercase();
    let bull = lower.find("argue the bull");
    let bear = lower.find("argue the bear");
    match (bull, bear) {
        (Some(bull), Some(bear)) if bear < bull => Some(Stance::Bear),
        (Some(_), _) => Some(Stance::Bull),
        (None, Some(_)) => Some(Stance::Bear),
        (None, None) => None,
    }
}

fn analyst(task: &Task) -> Value {
    let hash = fnv1a(task.text.as_bytes());
    let argued = argued_side(&task.text);
    let evidence = Evidence::of(task);
    let stance = argued
        .or_else(|| evidence.trend())
        .unwrap_or(match hash % 3 {
            0 => Stance::Bull,
            1 => Stance::Bear,
            _ => Stance::Neutral,
        });
    let confidence = format!("0.{}", 50 + (hash >> 8) % 50);
    let symbol = task.symbol();
    let points = stance.points();
    let point = points[((hash >> 16) % points.len() as u64) as usize];
    let mut summary = format!(
        "{} on {}: {point}.",
        match stance {
            Stance::Bull => "Bullish",
            Stance::Bear => "Bearish",
            Stance::Neutral => "Neutral",
        },
        symbol.as_deref().unwrap_or("the market")
    );
    if argued.is_some() {
        let tally = Tally::of(&task.text);
        let (opposing, side) = match stance {
            Stance::Bear => (tally.bull, "bullish"),
            _ => (tally.bear, "bearish"),
        };
        if opposing > 0 {
            let s = if opposing == 1 { "" } else { "s" };
            summary.push_str(&format!(" Answers {opposing} {side} view{s}."));
        }
    }
    if !evidence.is_empty() {
        summary.push_str(&format!(" Data: {}.", evidence.describe()));
    }
    let mut out = json!({
        "stance": stance.as_str(),
        "confidence": confidence,
        "symbol": symbol,
        "summary": summary,
    });
    if !evidence.is_empty() {
        out["data"] = evidence.to_value();
    }
    out
}

fn trader(task: &Task) -> Value {
    let tally = Tally::of(&task.text);
    let (action, margin) = if tally.bull > tally.bear {
        ("buy", tally.bull - tally.bear)
    } else if tally.bear > tally.bull {
        ("sell", tally.bear - tally.bull)
    } else {
        ("hold", 0)
    };
    let symbol = task.symbol();
    let evidence = Evidence::of(task);
    let mut quantity = margin * UNITS_PER_STANCE;
    // A buy the cash cannot pay for is cut to what it can (fees aside: 99 % of the cash).
    if action == "buy"
        && let (Some(price), Some(cash)) = (evidence.price, evidence.cash)
        && price > 0.0
    {
        quantity = quantity.min((cash * 0.99 / price).floor().max(0.0) as u64);
    }
    let rationale = format!(
        "{} bull vs {} bear views ({} neutral): {}.",
        tally.bull,
        tally.bear,
        tally.neutral,
        match action {
            "hold" => "no edge, hold".to_owned(),
            _ => format!(
                "{action} {quantity} {}",
                symbol.as_deref().unwrap_or("units")
            ),
        }
    );
    let mut out = json!({
        "action": action,
        "symbol": symbol,
        "quantity": quantity,
        "bull": tally.bull,
        "bear": tally.bear,
        "rationale": rationale,
    });
    if let Some(price) = evidence.price {
        out["price"] = json!(price.to_string());
    }
    out
}

fn risk_manager(task: &Task) -> Value {
    let limit = task
        .whole("limit")
        .or_else(|| task.whole("max_quantity"))
        .unwrap_or(DEFAULT_LIMIT);
    let Some(quantity) = task.whole("quantity") else {
        return json!({
            "approved": false,
            "max_quantity": limit,
            "reason": "no whole-number `quantity` in the prompt or its inputs",
        });
    };
    let trade = match (task.field("action"), task.symbol()) {
        (Some(Value::String(action)), Some(symbol)) => format!("{action} {quantity} {symbol}"),
        (Some(Value::String(action)), None) => format!("{action} {quantity}"),
        _ => format!("quantity {quantity}"),
    };
    let approved = quantity <= limit;
    let reason = if approved {
        format!("{trade} is within the limit of {limit}")
    } else {
        format!("{trade} exceeds the limit of {limit}")
    };
    json!({"approved": approved, "max_quantity": limit, "reason": reason})
}

fn patcher(task: &Task, offered: bool) -> Reply {
    if !offered {
        return answer(json!({"patched": false, "reason": "no patch_workflow tool"}));
    }
    if let Some(result) = task.result_of("patch_workflow") {
        let patched = result.get("ir_version").is_some() && result.get("error").is_none();
        return answer(json!({"patched": patched, "result": result}));
    }
    let Some(block) = json_block(&task.text) else {
        return answer(json!({
            "patched": false,
            "reason": "no ```json block in the prompt",
        }));
    };
    let operations = match serde_json::from_str::<Value>(block) {
        Ok(Value::Array(operations)) => Value::Array(operations),
        Ok(Value::Object(mut object)) if object.get("operations").is_some_and(Value::is_array) => {
            object.remove("operations").unwrap_or_default()
        }
        Ok(_) => {
            return answer(json!({
                "patched": false,
                "reason": "the ```json block is neither a JSON Patch array nor an object with `operations`",
            }));
        }
        Err(error) => {
            return answer(json!({
                "patched": false,
                "reason": format!("the ```json block is not JSON: {error}"),
            }));
        }
    };
    Reply::calls([(
        "patch_workflow".to_owned(),
        json!({ "operations": operations }),
    )])
}

/// The text between the first ```` ```json ```` line and the next ```` ``` ````.
fn json_block(text: &str) -> Option<&str> {
    let open = text.find("```json")?;
    let after = &text[open + "```json".len()..];
    let body = &after[after.find('\n')? + 1..];
    let close = body.find("```")?;
    Some(&body[..close])
}

fn calculator(task: &Task, offered: bool) -> Reply {
    if !offered {
        return answer(json!({"value": null, "reason": "no calc tool"}));
    }
    if let Some(result) = task.result_of("calc") {
        if let Some(error) = result.get("error") {
            return answer(json!({"value": null, "error": error}));
        }
        let value = result
            .get("value")
            .or_else(|| result.get("result"))
            .unwrap_or(result);
        return answer(json!({ "value": value }));
    }
    match line_value(&task.text, "calc") {
        Some(expression) => {
            Reply::calls([("calc".to_owned(), json!({ "expression": expression }))])
        }
        None => answer(json!({
            "value": null,
            "reason": "no `calc: <expression>` line in the prompt",
        })),
    }
}

fn skill_user(task: &Task, tools: &[String]) -> Reply {
    let Some(tool) = tools.iter().find(|t| t.starts_with("skill_")) else {
        return answer(json!({"result": null, "reason": "no skill_ tool offered"}));
    };
    if let Some(result) = task.result_of(tool) {
        return answer(json!({"tool": tool, "result": result}));
    }
    match json_block(&task.text).map(serde_json::from_str::<Value>) {
        Some(Ok(arguments @ Value::Object(_))) => Reply::calls([(tool.clone(), arguments)]),
        _ => answer(json!({
            "result": null,
            "reason": "no ```json block holding an object in the prompt",
        })),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use tradeloom_llm::ToolCallRequest;

    fn ask(role: WorkflowRole, prompt: &str) -> Value {
        match role.respond(&[Message::system("workflow"), Message::user(prompt)], &[]) {
            Reply::Answer(text) => serde_json::from_str(&text).unwrap(),
            other => panic!("{other:?}"),
        }
    }

    fn called(role: WorkflowRole, messages: &[Message], tools: &[&str]) -> Vec<(String, Value)> {
        let tools: Vec<String> = tools.iter().map(|t| (*t).to_owned()).collect();
        match role.respond(messages, &tools) {
            Reply::Calls(calls) => calls
                .into_iter()
                .map(|(name, arguments)| (name, serde_json::from_str(&arguments).unwrap()))
                .collect(),
            other => panic!("{other:?}"),
        }
    }

    fn answered(role: WorkflowRole, messages: &[Message], tools: &[&str]) -> Value {
        let tools: Vec<String> = tools.iter().map(|t| (*t).to_owned()).collect();
        match role.respond(messages, &tools) {
            Reply::Answer(text) => serde_json::from_str(&text).unwrap(),
            other => panic!("{other:?}"),
        }
    }

    /// The assistant's call and the tool's result, appended to `messages`.
    fn after_call(
        messages: &[Message],
        name: &str,
        arguments: &Value,
        result: &str,
    ) -> Vec<Message> {
        let mut messages = messages.to_vec();
        messages.push(Message {
            role: Role::Assistant,
            content: None,
            tool_calls: vec![ToolCallRequest {
                id: "call_0_0".into(),
                name: name.into(),
                arguments: arguments.to_string(),
            }],
            tool_call_id: None,
        });
        messages.push(Message::tool("call_0_0", result));
        messages
    }

    #[test]
    fn names_parse() {
        for name in [
            "analyst",
            "trader",
            "risk_manager",
            "patcher",
            "calculator",
            "skill_user",
        ] {
            assert!(WorkflowRole::parse(name).is_some(), "{name}");
        }
        assert_eq!(
            WorkflowRole::parse("risk-manager"),
            Some(WorkflowRole::RiskManager)
        );
        assert_eq!(WorkflowRole::parse("analysts"), None);
    }

    #[test]
    fn analyst_takes_the_argued_side_and_is_repeatable() {
        let prompt = "Argue the BEAR case for the stock.\nsymbol: AAPL\nInputs: {\"bull\":{\"stance\":\"bull\",\"summary\":\"argue the bull case\"}}";
        let first = ask(WorkflowRole::Analyst, prompt);
        assert_eq!(first["stance"], "bear");
        assert_eq!(first["symbol"], "AAPL");
        let summary = first["summary"].as_str().unwrap();
        assert!(summary.starts_with("Bearish on AAPL: "), "{summary}");
        assert!(summary.ends_with(" Answers 1 bullish view."), "{summary}");
        let confidence = first["confidence"].as_str().unwrap();
        let hundredths: u32 = confidence.strip_prefix("0.").unwrap().parse().unwrap();
        assert!((50..=99).contains(&hundredths), "{confidence}");
        assert_eq!(ask(WorkflowRole::Analyst, prompt), first);

        let bull = ask(
            WorkflowRole::Analyst,
            "Please argue the bull case, then the bear.",
        );
        assert_eq!(bull["stance"], "bull");
        assert_eq!(bull["symbol"], Value::Null);
    }

    #[test]
    fn analyst_without_a_side_spreads_over_all_three_stances() {
        let mut seen = std::collections::BTreeSet::new();
        for symbol in [
            "AAPL", "MSFT", "GOOG", "AMZN", "NVDA", "META", "TSLA", "NFLX",
        ] {
            let prompt = format!("Assess the fundamentals.\nInputs: {{\"symbol\":\"{symbol}\"}}");
            let answer = ask(WorkflowRole::Analyst, &prompt);
            assert_eq!(answer["symbol"], symbol);
            seen.insert(answer["stance"].as_str().unwrap().to_owned());
        }
        assert_eq!(seen.len(), 3, "{seen:?}");
    }

    #[test]
    fn trader_counts_stances() {
        let views = r#"Inputs: {"a":{"stance":"bull"},"b":{"stance": "bull"},"c":{"stance":"bear"},"d":{"stance":"neutral"},"symbol":"AAPL"}"#;
        let answer = ask(
            WorkflowRole::Trader,
            &format!("Weigh the bear and bull views.\n{views}"),
        );
        assert_eq!(
            answer,
            json!({"action": "buy", "symbol": "AAPL", "quantity": 10, "bull": 2, "bear": 1,
                   "rationale": "2 bull vs 1 bear views (1 neutral): buy 10 AAPL."})
        );
        // No stance fields: the words count.
        let answer = ask(
            WorkflowRole::Trader,
            "symbol: MSFT\nThe analysts are bearish, bearish and bullish. Bear market.",
        );
        assert_eq!(answer["action"], "sell");
        assert_eq!(answer["quantity"], 20);
        assert_eq!(answer["symbol"], "MSFT");
        let answer = ask(WorkflowRole::Trader, "Decide.");
        assert_eq!(answer["action"], "hold");
        assert_eq!(answer["quantity"], 0);
        assert_eq!(answer["symbol"], Value::Null);
    }

    #[test]
    fn risk_manager_checks_the_quantity_against_the_limit() {
        let trade = r#"Inputs: {"trade":{"action":"buy","symbol":"AAPL","quantity":30}}"#;
        assert_eq!(
            ask(WorkflowRole::RiskManager, &format!("Check it.\n{trade}")),
            json!({"approved": true, "max_quantity": 100, "reason": "buy 30 AAPL is within the limit of 100"})
        );
        assert_eq!(
            ask(
                WorkflowRole::RiskManager,
                &format!("Check it.\nlimit: 20\n{trade}")
            ),
            json!({"approved": false, "max_quantity": 20, "reason": "buy 30 AAPL exceeds the limit of 20"})
        );
        assert_eq!(
            ask(
                WorkflowRole::RiskManager,
                "quantity: \"25\"\nMax quantity: 25"
            ),
            json!({"approved": true, "max_quantity": 25, "reason": "quantity 25 is within the limit of 25"})
        );
        let refused = ask(WorkflowRole::RiskManager, "quantity: lots");
        assert_eq!(refused["approved"], false);
        assert_eq!(refused["max_quantity"], 100);
    }

    #[test]
    fn patcher_calls_once_then_reports() {
        let prompt = "Add a node.\n```json\n[{\"op\": \"add\", \"path\": \"/nodes/-\", \"value\": {\"id\": \"x\", \"type\": \"transform\"}}]\n```\nThanks.";
        let opening = [Message::system("workflow"), Message::user(prompt)];
        let calls = called(WorkflowRole::Patcher, &opening, &["calc", "patch_workflow"]);
        let arguments = json!({"operations": [{"op": "add", "path": "/nodes/-", "value": {"id": "x", "type": "transform"}}]});
        assert_eq!(
            calls,
            vec![("patch_workflow".to_owned(), arguments.clone())]
        );

        let done = after_call(
            &opening,
            "patch_workflow",
            &arguments,
            r#"{"ir_version":2}"#,
        );
        assert_eq!(
            answered(WorkflowRole::Patcher, &done, &["patch_workflow"]),
            json!({"patched": true, "result": {"ir_version": 2}})
        );
        let refused = after_call(
            &opening,
            "patch_workflow",
            &arguments,
            r#"{"error":"patch rejected","reasons":["node `a` is completed"]}"#,
        );
        assert_eq!(
            answered(WorkflowRole::Patcher, &refused, &["patch_workflow"]),
            json!({"patched": false, "result": {"error": "patch rejected", "reasons": ["node `a` is completed"]}})
        );
        assert_eq!(
            answered(WorkflowRole::Patcher, &opening, &["calc"]),
            json!({"patched": false, "reason": "no patch_workflow tool"})
        );
        let object =
            "```json\n{\"operations\": [{\"op\": \"remove\", \"path\": \"/nodes/1\"}]}\n```";
        assert_eq!(
            called(
                WorkflowRole::Patcher,
                &[Message::user(object)],
                &["patch_workflow"]
            ),
            vec![(
                "patch_workflow".to_owned(),
                json!({"operations": [{"op": "remove", "path": "/nodes/1"}]})
            )]
        );
        let no_block = answered(
            WorkflowRole::Patcher,
            &[Message::user("Patch it.")],
            &["patch_workflow"],
        );
        assert_eq!(no_block["patched"], false);
        let bad = answered(
            WorkflowRole::Patcher,
            &[Message::user("```json\n[1,\n```")],
            &["patch_workflow"],
        );
        assert!(
            bad["reason"]
                .as_str()
                .unwrap()
                .starts_with("the ```json block is not JSON"),
            "{bad}"
        );
    }

    #[test]
    fn an_analyst_with_market_tools_reads_them_and_follows_the_trend() {
        let opening = [Message::user(
            "Assess the stock. Answer in JSON.\nInputs: {\"symbol\": \"AAA\"}",
        )];
        let tools = ["get_bars", "get_price", "search_news", "calc"];
        assert_eq!(
            called(WorkflowRole::Analyst, &opening, &tools),
            vec![
                (
                    "get_bars".to_owned(),
                    json!({"symbol": "AAA", "days": ANALYST_BARS})
                ),
                ("get_price".to_owned(), json!({"symbol": "AAA"})),
                (
                    "search_news".to_owned(),
                    json!({"query": "AAA", "limit": 3})
                ),
            ]
        );
        for (first, last, stance) in [("100.00", "104.50", "bull"), ("100.00", "95.25", "bear")] {
            let bars = json!({"symbol": "AAA", "count": 2, "bars": [
                {"date": "2025-03-03", "close": first}, {"date": "2025-03-04", "close": last}]});
            let messages = after_call(
                &opening,
                "get_bars",
                &json!({"symbol": "AAA"}),
                &bars.to_string(),
            );
            let answer = answered(WorkflowRole::Analyst, &messages, &tools);
            assert_eq!(answer["stance"], stance, "{answer}");
            assert_eq!(answer["data"]["bars"], 2, "{answer}");
            assert_eq!(answer["data"]["last_bar"], "2025-03-04", "{answer}");
        }
        // Without market tools it answers at once, as before.
        assert!(
            answered(WorkflowRole::Analyst, &opening, &["calc"])
                .get("data")
                .is_none()
        );
    }

    #[test]
    fn a_trader_with_market_tools_cuts_a_buy_to_its_cash() {
        let opening = [Message::user(
            "Propose an order.\nInputs: {\"symbol\": \"AAA\", \"a\": {\"stance\": \"bull\"}, \"b\": {\"stance\": \"bull\"}, \"c\": {\"stance\": \"bull\"}}",
        )];
        let tools = ["get_price", "get_portfolio"];
        assert_eq!(
            called(WorkflowRole::Trader, &opening, &tools),
            vec![
                ("get_price".to_owned(), json!({"symbol": "AAA"})),
                ("get_portfolio".to_owned(), json!({})),
            ]
        );
        let mut messages = opening.to_vec();
        messages.push(Message {
            role: Role::Assistant,
            content: None,
            tool_calls: vec![
                ToolCallRequest {
                    id: "p".into(),
                    name: "get_price".into(),
                    arguments: "{}".into(),
                },
                ToolCallRequest {
                    id: "b".into(),
                    name: "get_portfolio".into(),
                    arguments: "{}".into(),
                },
            ],
            tool_call_id: None,
        });
        messages.push(Message::tool("p", r#"{"price": "400.00"}"#));
        messages.push(Message::tool("b", r#"{"cash": "10000.00"}"#));
        let answer = answered(WorkflowRole::Trader, &messages, &tools);
        // 3 bull, 0 bear: 30 wanted, 24 affordable (99 % of 10,000 at 400).
        assert_eq!(
            (&answer["action"], &answer["quantity"], &answer["price"]),
            (&json!("buy"), &json!(24), &json!("400")),
            "{answer}"
        );
    }

    #[test]
    fn calculator_calls_calc_then_answers_its_value() {
        let opening = [Message::user(
            "Work it out.\ncalc: (100 - 4) * 2\ncalc: 1 + 1",
        )];
        let arguments = json!({"expression": "(100 - 4) * 2"});
        assert_eq!(
            called(WorkflowRole::Calculator, &opening, &["calc"]),
            vec![("calc".to_owned(), arguments.clone())]
        );
        for (result, expected) in [
            (r#"{"value":"192"}"#, json!({"value": "192"})),
            (r#"{"result":"192"}"#, json!({"value": "192"})),
            ("192", json!({"value": 192})),
            (
                r#"{"error":"division by zero"}"#,
                json!({"value": null, "error": "division by zero"}),
            ),
        ] {
            let messages = after_call(&opening, "calc", &arguments, result);
            assert_eq!(
                answered(WorkflowRole::Calculator, &messages, &["calc"]),
                expected,
                "{result}"
            );
        }
        assert_eq!(
            answered(WorkflowRole::Calculator, &opening, &[]),
            json!({"value": null, "reason": "no calc tool"})
        );
        assert_eq!(
            answered(
                WorkflowRole::Calculator,
                &[Message::user("Add 1 and 1.")],
                &["calc"]
            )["value"],
            Value::Null
        );
    }

    #[test]
    fn inputs_line_and_fields() {
        let task = Task::read(&[Message::user(
            "Go.\nsymbol: AAPL (Apple)\nInputs: {\"trade\": {\"symbol\": \"MSFT\"},\n \"limit\": 5}",
        )]);
        assert_eq!(
            task.inputs,
            Some(json!({"trade": {"symbol": "MSFT"}, "limit": 5}))
        );
        assert_eq!(task.symbol().as_deref(), Some("MSFT"));
        assert_eq!(task.whole("limit"), Some(5));
        let task = Task::read(&[Message::user("symbol: AAPL (Apple)\nInputs: not json")]);
        assert_eq!(task.inputs, None);
        assert_eq!(task.symbol().as_deref(), Some("AAPL"));
    }

    #[test]
    fn skill_user_calls_the_skill_with_the_json_block_then_answers_its_result() {
        let prompt = "Score it.\n```json\n{\"closes\": [1, 2]}\n```";
        let messages = [Message::system("workflow"), Message::user(prompt)];
        let tools = ["calc", "skill_momentum"];
        assert_eq!(
            called(WorkflowRole::SkillUser, &messages, &tools),
            vec![("skill_momentum".to_owned(), json!({"closes": [1, 2]}))]
        );
        let after = after_call(
            &messages,
            "skill_momentum",
            &json!({"closes": [1, 2]}),
            r#"{"signal":"buy"}"#,
        );
        assert_eq!(
            answered(WorkflowRole::SkillUser, &after, &tools),
            json!({"tool": "skill_momentum", "result": {"signal": "buy"}})
        );
        assert_eq!(
            answered(WorkflowRole::SkillUser, &messages, &["calc"])["result"],
            Value::Null
        );
    }
}
