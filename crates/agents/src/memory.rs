//! Memory and reflection (TradingAgents): after each completed model-day, the model reflects on
//! its day (its trades, the change in value, its own summary) in one more call and writes a short
//! lesson; the next days' session messages carry its last lessons and decisions, bounded by
//! tokens. Per model and off unless the model's config has a `memory` block.

use std::time::Instant;

use chrono::NaiveDate;
use serde::{Deserialize, Serialize};
use serde_json::Value;
use tradeloom_core::Money;
use tradeloom_llm::{ChatRequest, LlmProvider, Message, Usage};
use tradeloom_store::{ReasoningMessage, Trade, TradeAction};

use crate::session::LlmCall;

/// The system prompt of a reflection call (no tools are offered).
pub const REFLECTION_PROMPT: &str = "You review your own trading day in a daily simulation and \
write one short lesson for your future sessions: at most two sentences, concrete, about what to \
repeat or to avoid. Reply with the lesson only.";

/// The first line of a reflection request; mock-llm's policies recognise it.
pub const REFLECTION_HEADER: &str = "Reflection on session date:";

/// A lesson is cut to this many characters.
pub const MAX_LESSON_CHARS: usize = 400;

/// The model's own summary quoted in a reflection request is cut to this many characters.
const MAX_SUMMARY_CHARS: usize = 1_000;

/// `memory:` of a simulation model.
///
/// ```yaml
/// memory:
///   lessons: 5        # the last N days carried into each session message (0 to 50; default 5)
///   max_tokens: 600   # the memory section's bound in estimated tokens (50 to 8000; default 600)
///   reflect: true     # a reflection call after each completed day (default true)
/// ```
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct MemoryConfig {
    #[serde(default = "default_lessons")]
    pub lessons: u32,
    #[serde(default = "default_max_tokens")]
    pub max_tokens: u32,
    #[serde(default = "default_reflect")]
    pub reflect: bool,
}

impl MemoryConfig {
    /// The largest `lessons`.
    pub const MAX_LESSONS: u32 = 50;
    /// The bounds of `max_tokens`.
    pub const TOKEN_RANGE: std::ops::RangeInclusive<u32> = 50..=8_000;

    /// Why this config cannot be used, naming the field (relative to the `memory` block).
    pub fn check(&self) -> Result<(), (&'static str, String)> {
        if self.lessons > Self::MAX_LESSONS {
            return Err((
                "lessons",
                format!(
                    "lessons must be 0 to {}, got {}",
                    Self::MAX_LESSONS,
                    self.lessons
                ),
            ));
        }
        if !Self::TOKEN_RANGE.contains(&self.max_tokens) {
            return Err((
                "max_tokens",
                format!(
                    "max_tokens must be {} to {}, got {}",
                    Self::TOKEN_RANGE.start(),
                    Self::TOKEN_RANGE.end(),
                    self.max_tokens
                ),
            ));
        }
        Ok(())
    }
}

const fn default_lessons() -> u32 {
    5
}

const fn default_max_tokens() -> u32 {
    600
}

const fn default_reflect() -> bool {
    true
}

/// What a model remembers of one completed day: stored with the day (`job_details.memory`) and
/// served by `GET /simulate/{job_id}/memory`. Money is exact decimal text.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct MemoryEntry {
    pub date: NaiveDate,
    /// The day's trades, e.g. `buy 10 AAA at 101.2`; empty when it did not trade.
    pub decisions: Vec<String>,
    /// Exact decimal text in the job's currency.
    pub portfolio_value: String,
    /// Change of the portfolio's value since the model's previous completed day (since the
    /// initial cash for its first): exact decimal text, with its sign.
    pub change: String,
    /// The reflection's lesson; `None` when reflection is off or its call failed.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub lesson: Option<String>,
    /// Why the reflection call failed (the day is completed all the same).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reflection_error: Option<String>,
    /// Tokens of the reflection call.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reflection_usage: Option<Usage>,
}

impl MemoryEntry {
    /// The entry of a day that ended with `trades` and `portfolio_value`, `previous` being the
    /// value the model started the day from.
    pub fn of_day(
        date: NaiveDate,
        trades: &[Trade],
        portfolio_value: Money,
        previous: Money,
    ) -> Self {
        let decisions = trades
            .iter()
            .filter(|t| t.action != TradeAction::Hold)
            .map(|t| {
                format!(
                    "{} {} {} at {}",
                    t.action.as_str(),
                    t.quantity,
                    t.symbol.as_deref().unwrap_or("-"),
                    t.price
                )
            })
            .collect();
        // Both amounts are in the job's currency; a difference cannot overflow in practice,
        // and zero is the honest answer if it did.
        let change = portfolio_value
            .checked_sub(previous)
            .unwrap_or_else(|_| Money::zero(portfolio_value.currency()));
        Self {
            date,
            decisions,
            portfolio_value: portfolio_value.to_string(),
            change: signed(change),
            lesson: None,
            reflection_error: None,
            reflection_usage: None,
        }
    }

    fn decisions_text(&self) -> String {
        if self.decisions.is_empty() {
            "no trades".to_string()
        } else {
            self.decisions.join("; ")
        }
    }

    fn line(&self) -> String {
        let mut line = format!(
            "- {}: {}; portfolio {} ({}).",
            self.date,
            self.decisions_text(),
            self.portfolio_value,
            self.change
        );
        if let Some(lesson) = &self.lesson {
            line.push_str(" Lesson: ");
            line.push_str(lesson);
        }
        line
    }

    /// The portfolio's value at the day's close, in `currency`.
    pub fn value(&self, currency: tradeloom_core::Currency) -> Option<Money> {
        Money::parse(&self.portfolio_value, currency).ok()
    }
}

/// `+12.00`, `-3.10`, `0.00`.
fn signed(m: Money) -> String {
    if m.is_negative() || m.raw() == 0 {
        m.to_string()
    } else {
        format!("+{m}")
    }
}

/// Tokens of `text` as estimated everywhere in tradeloom's figures: a token per 4 characters.
pub fn estimate_tokens(text: &str) -> u32 {
    text.chars().count().div_ceil(4) as u32
}

/// The memory section of a session message: the last `config.lessons` entries of `entries`
/// (oldest first), fewer when they would pass `config.max_tokens`; `None` when nothing fits.
pub fn memory_section(config: &MemoryConfig, entries: &[MemoryEntry]) -> Option<String> {
    let n = (config.lessons as usize).min(entries.len());
    let mut lines: Vec<String> = entries[entries.len() - n..]
        .iter()
        .map(MemoryEntry::line)
        .collect();
    loop {
        if lines.is_empty() {
            return None;
        }
        let section = format!(
            "Memory (your last {} sessions, oldest first):\n{}",
            lines.len(),
            lines.join("\n")
        );
        if estimate_tokens(&section) <= config.max_tokens {
            return Some(section);
        }
        // The oldest goes first.
        lines.remove(0);
    }
}

/// What a reflection call produced: its messages for the transcript (at `step`), its LLM call,
/// and the lesson or why there is none.
pub struct Reflection {
    pub messages: Vec<ReasoningMessage>,
    pub call: LlmCall,
    pub lesson: Result<String, String>,
}

/// The reflection request of a day: the day's trades, the change in value and the model's own
/// summary of the day.
pub fn reflection_request(model: &str, entry: &MemoryEntry, summary: &str) -> ChatRequest {
    let summary = cut(summary.trim(), MAX_SUMMARY_CHARS);
    let text = format!(
        "{REFLECTION_HEADER} {}\nModel: {model}\nTrades: {}\nPortfolio value: {} (change since the previous session: {})\nYour summary of the day: {}\n\nWrite one short lesson for your future sessions.",
        entry.date,
        entry.decisions_text(),
        entry.portfolio_value,
        entry.change,
        if summary.is_empty() {
            "(none)"
        } else {
            summary
        }
    );
    ChatRequest {
        messages: vec![Message::system(REFLECTION_PROMPT), Message::user(text)],
        tools: Vec::new(),
    }
}

/// Runs the reflection call of `entry`'s day with `provider`, logged at `step`.
pub async fn reflect(
    provider: &dyn LlmProvider,
    model: &str,
    entry: &MemoryEntry,
    summary: &str,
    step: u32,
) -> Reflection {
    let request = reflection_request(model, entry, summary);
    let mut messages: Vec<ReasoningMessage> =
        request.messages.iter().map(|m| logged(step, m)).collect();
    let started = Instant::now();
    match provider.chat(&request).await {
        Ok(response) => {
            messages.push(logged(step, &response.message));
            let call = LlmCall {
                step,
                latency_ms: response.latency.as_millis() as u64,
                attempts: response.attempts,
                usage: response.usage,
                finish_reason: response.finish_reason.clone(),
                error: None,
            };
            let text = response.message.content.unwrap_or_default();
            let lesson = cut(text.trim(), MAX_LESSON_CHARS);
            let lesson = if lesson.is_empty() {
                Err("the reflection answered no text".to_string())
            } else {
                Ok(lesson.to_string())
            };
            Reflection {
                messages,
                call,
                lesson,
            }
        }
        Err(e) => Reflection {
            messages,
            call: LlmCall {
                step,
                latency_ms: started.elapsed().as_millis() as u64,
                attempts: 0,
                usage: Usage::default(),
                finish_reason: None,
                error: Some(e.to_string()),
            },
            lesson: Err(format!("reflection call failed: {e}")),
        },
    }
}

fn logged(step: u32, message: &Message) -> ReasoningMessage {
    crate::session::log(step, message)
}

/// `text` cut to at most `max` characters (on a character boundary).
fn cut(text: &str, max: usize) -> &str {
    match text.char_indices().nth(max) {
        Some((i, _)) => &text[..i],
        None => text,
    }
}

/// The entries stored with a job's completed days (`job_details.memory`), for one model, in
/// date order; an entry that does not read is skipped with a warning (the day itself is kept).
pub fn entries_of(stored: impl IntoIterator<Item = (NaiveDate, Value)>) -> Vec<MemoryEntry> {
    let mut out = Vec::new();
    for (date, value) in stored {
        match serde_json::from_value::<MemoryEntry>(value) {
            Ok(entry) => out.push(entry),
            Err(e) => tracing::warn!(%date, error = %e, "stored memory entry skipped"),
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use tradeloom_core::{Currency, Decimal};

    fn usd(text: &str) -> Money {
        Money::parse(text, Currency::from_code("USD").unwrap()).unwrap()
    }

    fn entry(day: u32, lesson: &str) -> MemoryEntry {
        MemoryEntry {
            date: NaiveDate::from_ymd_opt(2025, 1, day).unwrap(),
            decisions: vec![format!("buy 10 AAA at 10{day}.00")],
            portfolio_value: "10012.00".into(),
            change: "+12.00".into(),
            lesson: Some(lesson.to_string()),
            reflection_error: None,
            reflection_usage: None,
        }
    }

    #[test]
    fn section_keeps_the_last_n_oldest_first() {
        let entries: Vec<_> = (2..=9).map(|d| entry(d, "stay patient")).collect();
        let config = MemoryConfig {
            lessons: 3,
            max_tokens: 600,
            reflect: true,
        };
        let section = memory_section(&config, &entries).unwrap();
        assert!(section.starts_with("Memory (your last 3 sessions, oldest first):\n- 2025-01-07: buy 10 AAA at 107.00; portfolio 10012.00 (+12.00). Lesson: stay patient\n"), "{section}");
        assert!(section.ends_with("- 2025-01-09: buy 10 AAA at 109.00; portfolio 10012.00 (+12.00). Lesson: stay patient"), "{section}");
    }

    #[test]
    fn section_drops_the_oldest_to_fit_the_token_bound() {
        let long = "x".repeat(300);
        let entries: Vec<_> = (2..=6).map(|d| entry(d, &long)).collect();
        let config = MemoryConfig {
            lessons: 5,
            max_tokens: 200,
            reflect: true,
        };
        let section = memory_section(&config, &entries).unwrap();
        assert!(estimate_tokens(&section) <= 200);
        assert!(
            section.starts_with("Memory (your last 2 sessions"),
            "{section}"
        );
        assert!(section.contains("2025-01-06") && !section.contains("2025-01-04"));
        let tiny = MemoryConfig {
            max_tokens: 50,
            ..config
        };
        assert_eq!(memory_section(&tiny, &entries), None);
        let none = MemoryConfig {
            lessons: 0,
            ..config
        };
        assert_eq!(memory_section(&none, &entries), None);
    }

    #[test]
    fn entry_of_a_day_lists_trades_and_the_exact_change() {
        let usd_ccy = Currency::from_code("USD").unwrap();
        let trade = Trade {
            step: 2,
            action: TradeAction::Buy,
            symbol: Some("AAA".into()),
            quantity: Decimal::from_int(10),
            price: Decimal::parse("101.20").unwrap(),
            fee: usd("1.01"),
            cash_after: usd("8986.99"),
        };
        let hold = Trade {
            action: TradeAction::Hold,
            symbol: None,
            ..trade.clone()
        };
        let e = MemoryEntry::of_day(
            NaiveDate::from_ymd_opt(2025, 1, 3).unwrap(),
            &[trade, hold],
            usd("9990.10"),
            usd("10000.00"),
        );
        assert_eq!(e.decisions, vec!["buy 10 AAA at 101.2"]);
        assert_eq!(e.change, "-9.90");
        assert_eq!(e.value(usd_ccy), Some(usd("9990.10")));
        let request = reflection_request("m1", &e, "Bought AAA.");
        let text = request.messages[1].content.as_deref().unwrap();
        assert!(text.starts_with("Reflection on session date: 2025-01-03\nModel: m1\nTrades: buy 10 AAA at 101.2\nPortfolio value: 9990.10 (change since the previous session: -9.90)"), "{text}");
        assert!(request.tools.is_empty());
    }

    #[test]
    fn config_bounds_name_the_field() {
        let bad = MemoryConfig {
            lessons: 51,
            max_tokens: 600,
            reflect: true,
        };
        assert_eq!(bad.check().unwrap_err().0, "lessons");
        let bad = MemoryConfig {
            lessons: 5,
            max_tokens: 10,
            reflect: true,
        };
        assert_eq!(bad.check().unwrap_err().0, "max_tokens");
    }

    #[test]
    fn cut_respects_characters() {
        assert_eq!(cut("héllo", 2), "hé");
        assert_eq!(cut("abc", 10), "abc");
    }
}
