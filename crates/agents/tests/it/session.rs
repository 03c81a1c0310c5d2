//! One model-day session against mock-llm: trades add up exactly, tools refuse look-ahead and
//! bad calls, faulty models fail with a reason.

use tradeloom_agents::{Book, ReferencePrice, SessionLimits, SessionView, ToolBox, run_session};
use tradeloom_core::{Bps, Currency, Decimal, Money};
use tradeloom_data::news::NewsCorpus;

use crate::{Market, date, provider, start_mock};

fn usd(s: &str) -> Money {
    Money::parse(s, Currency::USD).unwrap()
}

fn book() -> Book {
    Book::new(usd("10000"), Bps::fee_rate(Decimal::from_int(10)).unwrap())
}

const LIMITS: SessionLimits = SessionLimits {
    max_steps: 12,
    max_tool_errors: 3,
};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn buy_and_hold_session_adds_up_exactly() {
    let market = Market::create();
    let news = NewsCorpus::load(&market.universe_dir().join("news.jsonl")).unwrap();
    let base = start_mock().await;
    let view = SessionView {
        universe: &market.universe,
        news: &news,
        date: date("2025-01-03"),
        reference: ReferencePrice::Open,
    };
    let symbols = market.universe.symbols();
    let p = provider(&base, "buy_and_hold");
    let report = run_session(&*p, "bh", view, &symbols, book(), LIMITS).await;
    assert_eq!(report.error, None, "{:?}", report.reasoning);
    let outcome = report.outcome.as_ref().unwrap();
    assert_eq!(outcome.trades.len(), symbols.len(), "one buy per symbol");
    assert!(report.steps >= 3, "portfolio+prices, orders, summary");
    // Cash + Σ quantity × close = reported value, exactly; cash = initial − Σ (notional + fee).
    let mut total = outcome.cash;
    for h in &outcome.holdings {
        let close = market.universe.bar(&h.symbol, view.date).unwrap().close;
        assert_eq!(h.price.to_string(), close.to_string());
        let q = h.quantity.to_quantity(0).unwrap();
        let value = Money::notional(close, q, Currency::USD).unwrap();
        assert_eq!(value, h.value);
        total = total.checked_add(value).unwrap();
    }
    assert_eq!(total, outcome.portfolio_value);
    let mut cash = usd("10000");
    for t in &outcome.trades {
        let open = market
            .universe
            .bar(t.symbol.as_deref().unwrap(), view.date)
            .unwrap()
            .open;
        assert_eq!(t.price.to_string(), open.to_string(), "trades at the open");
        let notional =
            Money::notional(open, t.quantity.to_quantity(0).unwrap(), Currency::USD).unwrap();
        cash = cash
            .checked_sub(notional)
            .unwrap()
            .checked_sub(t.fee)
            .unwrap();
        assert_eq!(cash, t.cash_after);
    }
    assert_eq!(cash, outcome.cash);
    // Every message is logged: system, user, then assistant/tool turns.
    assert_eq!(outcome.reasoning[0].role, "system");
    assert_eq!(outcome.reasoning[1].role, "user");
    assert!(outcome.reasoning.iter().any(|m| m.role == "tool"));
    assert!(outcome.tool_calls.iter().any(|c| c.tool == "get_portfolio"));
    assert_eq!(report.llm_calls.len() as u32, report.steps);
    assert!(report.usage().total_tokens > 0, "token usage recorded");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn momentum_reads_news_and_prices_only_up_to_the_session() {
    let market = Market::create();
    let news = NewsCorpus::load(&market.universe_dir().join("news.jsonl")).unwrap();
    let base = start_mock().await;
    let view = SessionView {
        universe: &market.universe,
        news: &news,
        date: date("2025-01-06"),
        reference: ReferencePrice::Open,
    };
    let symbols = market.universe.symbols();
    let report = run_session(
        &*provider(&base, "momentum"),
        "m",
        view,
        &symbols,
        book(),
        LIMITS,
    )
    .await;
    assert_eq!(report.error, None);
    let search = report
        .tool_calls
        .iter()
        .find(|c| c.tool == "search_news")
        .unwrap();
    let as_of = view.as_of();
    for item in search.result.as_ref().unwrap()["results"]
        .as_array()
        .unwrap()
    {
        let ts: chrono::DateTime<chrono::Utc> =
            item["timestamp"].as_str().unwrap().parse().unwrap();
        assert!(
            ts <= as_of,
            "news from {ts} leaked into a session at {as_of}"
        );
    }
    // Today's price at the open shows the open and the previous close, not the close.
    let price = report
        .tool_calls
        .iter()
        .find(|c| c.tool == "get_price")
        .unwrap();
    let result = price.result.as_ref().unwrap();
    assert!(result.get("close").is_none(), "{result}");
    assert!(result.get("previous_close").is_some(), "{result}");
}

#[test]
fn get_bars_returns_complete_bars_up_to_the_session_and_no_later() {
    let market = Market::create();
    let news = NewsCorpus::empty();
    let sym = market.universe.symbols()[0].to_string();
    let dates: Vec<String> = market
        .universe
        .bars(&sym)
        .unwrap()
        .iter()
        .map(|b| b.date.to_string())
        .collect();
    let bars_of = |result: &serde_json::Value| -> Vec<String> {
        result["bars"]
            .as_array()
            .unwrap()
            .iter()
            .map(|b| b["date"].as_str().unwrap().to_string())
            .collect()
    };
    for (reference, last) in [
        (ReferencePrice::Open, "2025-01-03"),
        (ReferencePrice::Close, "2025-01-06"),
    ] {
        let view = SessionView {
            universe: &market.universe,
            news: &news,
            date: date("2025-01-06"),
            reference,
        };
        // Workflow agents are offered the market tools without buy/sell.
        let mut tools = ToolBox::new(view, book())
            .offering(&["get_bars", "get_price"])
            .unwrap();
        let all = tools
            .call(
                1,
                "get_bars",
                &format!(r#"{{"symbol": "{sym}", "days": 250}}"#),
            )
            .1
            .unwrap();
        let got = bars_of(&all);
        let upto = dates.iter().position(|d| d == last).unwrap();
        assert_eq!(got, dates[..=upto], "{reference:?}");
        assert_eq!(all["count"], got.len());
        // `days` takes the last ones, oldest first; `end` moves the window back.
        let two = tools
            .call(
                1,
                "get_bars",
                &format!(r#"{{"symbol": "{sym}", "days": 2, "end": "2025-01-03"}}"#),
            )
            .1
            .unwrap();
        assert_eq!(bars_of(&two), ["2025-01-02", "2025-01-03"]);
        let err = tools
            .call(
                1,
                "get_bars",
                &format!(r#"{{"symbol": "{sym}", "end": "2025-01-07"}}"#),
            )
            .1
            .unwrap_err()
            .to_string();
        assert!(err.contains("no look-ahead"), "{err}");
        let err = tools
            .call(
                1,
                "get_bars",
                &format!(r#"{{"symbol": "{sym}", "days": 0}}"#),
            )
            .1
            .unwrap_err()
            .to_string();
        assert!(err.starts_with("invalid arguments for `get_bars`"), "{err}");
        // A tool the node was not given is refused, naming those it has.
        let err = tools
            .call(
                1,
                "buy",
                &format!(r#"{{"symbol": "{sym}", "quantity": 1}}"#),
            )
            .1
            .unwrap_err()
            .to_string();
        assert_eq!(
            err,
            "unknown tool `buy`; available tools: get_bars, get_price"
        );
    }
    // Simulations keep their own tools: no get_bars there.
    let view = SessionView {
        universe: &market.universe,
        news: &news,
        date: date("2025-01-06"),
        reference: ReferencePrice::Open,
    };
    let mut tools = ToolBox::new(view, book());
    assert!(tools.specs().iter().all(|t| t.name != "get_bars"));
    let err = tools
        .call(1, "get_bars", &format!(r#"{{"symbol": "{sym}"}}"#))
        .1
        .unwrap_err()
        .to_string();
    assert!(err.starts_with("unknown tool `get_bars`"), "{err}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tools_refuse_look_ahead_and_bad_calls() {
    let market = Market::create();
    let news = NewsCorpus::empty();
    let view = SessionView {
        universe: &market.universe,
        news: &news,
        date: date("2025-01-06"),
        reference: ReferencePrice::Open,
    };
    let sym = market.universe.symbols()[0].to_string();
    let mut tools = ToolBox::new(view, book());
    let future = format!(r#"{{"symbol": "{sym}", "date": "2025-01-07"}}"#);
    let err = tools
        .call(1, "get_price", &future)
        .1
        .unwrap_err()
        .to_string();
    assert!(err.contains("no look-ahead"), "{err}");
    let past = format!(r#"{{"symbol": "{sym}", "date": "2025-01-03"}}"#);
    let bar = tools.call(1, "get_price", &past).1.unwrap();
    assert!(bar.get("close").is_some(), "a past day shows its whole bar");
    let err = tools
        .call(1, "get_price", r#"{"symbol": "NOPE"}"#)
        .1
        .unwrap_err()
        .to_string();
    assert!(err.starts_with("unknown symbol `NOPE`"), "{err}");
    let err = tools
        .call(
            1,
            "buy",
            &format!(r#"{{"symbol": "{sym}", "quantity": "lots"}}"#),
        )
        .1
        .unwrap_err()
        .to_string();
    assert!(
        err.contains("`arguments.quantity` must be an integer"),
        "{err}"
    );
    let err = tools
        .call(1, "buy", r#"{"symbol": "AAA", "quantity": "#)
        .1
        .unwrap_err()
        .to_string();
    assert!(err.contains("not valid JSON"), "{err}");
    let err = tools
        .call(1, "teleport_funds", "{}")
        .1
        .unwrap_err()
        .to_string();
    assert!(err.starts_with("unknown tool `teleport_funds`"), "{err}");
    let err = tools
        .call(
            1,
            "buy",
            &format!(r#"{{"symbol": "{sym}", "quantity": 100000000}}"#),
        )
        .1
        .unwrap_err()
        .to_string();
    assert!(err.starts_with("insufficient cash"), "{err}");
    let err = tools
        .call(
            1,
            "sell",
            &format!(r#"{{"symbol": "{sym}", "quantity": 1}}"#),
        )
        .1
        .unwrap_err()
        .to_string();
    assert!(err.contains("short selling is not allowed"), "{err}");
    assert_eq!(
        tools.book().cash(),
        usd("10000"),
        "refused orders change nothing"
    );
    let calc = tools
        .call(1, "calc", r#"{"expression": "(3 + 4) * 2"}"#)
        .1
        .unwrap();
    assert_eq!(calc["result"], "14");
    assert!(
        tools
            .call(1, "calc", r#"{"expression": "system('ls')"}"#)
            .1
            .is_err()
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn faulty_models_fail_with_a_reason() {
    let market = Market::create();
    let news = NewsCorpus::empty();
    let base = start_mock().await;
    let view = SessionView {
        universe: &market.universe,
        news: &news,
        date: date("2025-01-03"),
        reference: ReferencePrice::Close,
    };
    let symbols = market.universe.symbols();
    for (policy, expected) in [
        ("fault-bad-args", "too many tool errors"),
        ("fault-unknown-tool", "unknown tool `teleport_funds`"),
        ("fault-malformed-json", "not valid JSON"),
        ("fault-http-500", "LLM call failed at step 1"),
        ("fault-malformed-body", "LLM call failed at step 1"),
    ] {
        let report = run_session(
            &*provider(&base, policy),
            policy,
            view,
            &symbols,
            book(),
            LIMITS,
        )
        .await;
        let error = report.error.clone().unwrap_or_default();
        assert!(error.contains(expected), "{policy}: {error}");
        assert!(report.outcome.is_none(), "{policy}");
        assert_eq!(report.final_book.cash(), usd("10000"));
    }
    // A model that never stops calling tools runs out of steps.
    let limits = SessionLimits {
        max_steps: 1,
        max_tool_errors: 3,
    };
    let report = run_session(
        &*provider(&base, "momentum"),
        "m",
        view,
        &symbols,
        book(),
        limits,
    )
    .await;
    assert_eq!(
        report.error.as_deref(),
        Some("max_steps (1) reached without a final answer")
    );
}

/// Small local models write tool calls in their text: bare JSON, a fenced block or Qwen's
/// `<tool_call>` tags. Each is taken as the call it names (counted apart) and the session
/// trades exactly as with real `tool_calls`; a call naming no offered tool stays text.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tool_calls_written_in_the_text_are_recognised() {
    let market = Market::create();
    let news = NewsCorpus::load(&market.universe_dir().join("news.jsonl")).unwrap();
    let base = start_mock().await;
    let view = SessionView {
        universe: &market.universe,
        news: &news,
        date: date("2025-01-03"),
        reference: ReferencePrice::Open,
    };
    let symbols = market.universe.symbols();
    let reference = run_session(
        &*provider(&base, "momentum"),
        "m",
        view,
        &symbols,
        book(),
        LIMITS,
    )
    .await;
    assert_eq!(reference.error, None);
    assert_eq!(reference.content_tool_calls, 0);
    let trades = |r: &tradeloom_agents::SessionReport| {
        r.outcome
            .as_ref()
            .unwrap()
            .trades
            .iter()
            .map(|t| (t.action, t.symbol.clone(), t.quantity, t.price))
            .collect::<Vec<_>>()
    };
    for style in ["bare", "fenced", "tagged"] {
        let p = provider(&base, &format!("content-{style}-momentum"));
        let report = run_session(&*p, "m", view, &symbols, book(), LIMITS).await;
        assert_eq!(report.error, None, "{style}: {:?}", report.reasoning);
        assert_eq!(
            report.content_tool_calls,
            reference.tool_call_count(),
            "{style}"
        );
        assert_eq!(trades(&report), trades(&reference), "{style}");
    }
    // An unknown tool in the text: no call; the reply is the day's answer.
    let p = provider(&base, "content-bare-fault-unknown-tool");
    let report = run_session(&*p, "m", view, &symbols, book(), LIMITS).await;
    assert_eq!(report.error, None);
    assert_eq!(
        (report.content_tool_calls, report.tool_call_count()),
        (0, 0)
    );
    assert!(report.outcome.unwrap().trades.is_empty());
    // Arguments the schema refuses (a quantity that is not a number): no call either.
    let p = provider(&base, "content-tagged-fault-bad-args");
    let report = run_session(&*p, "m", view, &symbols, book(), LIMITS).await;
    assert_eq!(
        (report.content_tool_calls, report.tool_call_count()),
        (0, 0)
    );
}
