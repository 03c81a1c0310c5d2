//! Reflection requests (tradeloom-agents' memory): the trading policies answer one with a
//! lesson derived from the request alone, so a job with memory on stays deterministic.

use tradeloom_llm::{Message, Role};

/// The first line of a reflection request, as tradeloom-agents writes it.
const HEADER: &str = "Reflection on session date:";

/// The reflection request's text, when the first user message is one.
pub(crate) fn request(messages: &[Message]) -> Option<&str> {
    messages
        .iter()
        .find(|m| m.role == Role::User)
        .and_then(|m| m.content.as_deref())
        .filter(|text| text.trim_start().starts_with(HEADER))
}

/// The lesson of a reflection request: from its `Trades:` line and the sign of the change in
/// its `Portfolio value:` line.
pub(crate) fn lesson(text: &str) -> String {
    let line = |key: &str| {
        text.lines()
            .find_map(|l| l.trim().strip_prefix(key).map(str::trim))
            .unwrap_or_default()
    };
    let date = line(HEADER);
    let trades = line("Trades:");
    let change = line("Portfolio value:")
        .split("previous session:")
        .nth(1)
        .map_or("0", |c| c.trim().trim_end_matches(')'));
    let first_trade = trades.split(';').next().unwrap_or_default().trim();
    if change.starts_with('-') {
        format!(
            "On {date} the portfolio lost {} after {first_trade}: cut losing positions sooner and size new ones smaller.",
            change.trim_start_matches('-')
        )
    } else if trades.is_empty() || trades == "no trades" {
        format!(
            "On {date} I did not trade and the portfolio changed by {change}: wait for a clear signal before acting."
        )
    } else {
        format!(
            "On {date} the portfolio changed by {change} after {first_trade}: keep following the trend, and keep cash for new signals."
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn request_text(trades: &str, change: &str) -> String {
        format!(
            "Reflection on session date: 2025-01-03\nModel: m1\nTrades: {trades}\nPortfolio value: 9990.10 (change since the previous session: {change})\nYour summary of the day: ok"
        )
    }

    #[test]
    fn lessons_follow_the_change_and_the_trades() {
        assert_eq!(
            lesson(&request_text(
                "buy 10 AAA at 101.20; sell 2 BBB at 5",
                "-9.90"
            )),
            "On 2025-01-03 the portfolio lost 9.90 after buy 10 AAA at 101.20: cut losing positions sooner and size new ones smaller."
        );
        assert!(lesson(&request_text("no trades", "0.00")).contains("did not trade"));
        assert!(
            lesson(&request_text("buy 1 AAA at 1", "+3.00"))
                .contains("changed by +3.00 after buy 1 AAA at 1")
        );
    }

    #[test]
    fn only_a_reflection_request_is_recognised() {
        let messages = vec![
            Message::system("x"),
            Message::user(request_text("no trades", "0.00")),
        ];
        assert!(request(&messages).is_some());
        let session = vec![Message::user("Session date: 2025-01-03")];
        assert!(request(&session).is_none());
    }
}
