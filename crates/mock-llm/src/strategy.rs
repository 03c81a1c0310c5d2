//! The trading policies: what to look at, what to trade, and the final answer.
//!
//! A day is three steps, each derived from the messages since the user message:
//! 1. no assistant turn yet: ask for the portfolio and every symbol's price (and news);
//! 2. results in, nothing traded yet: a `calc` first on some `random` days, then sells and buys;
//! 3. trades answered: issue what is still pending, or summarize.
//!
//! The arithmetic is `f64` (this is a test policy) but deterministic.

use serde_json::json;

use crate::completion::Reply;
use crate::conversation::{
    Conversation, IssuedTrade, Observation, Portfolio, Session, Side, TradeOutcome,
};
use crate::hash::fnv1a;

/// A deterministic trading behaviour.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Strategy {
    /// Sell held fallers, buy risers not held (90 % of cash split equally).
    Momentum,
    /// Sell held risers, buy fallers not held (90 % of cash split equally).
    MeanReversion,
    /// Buy every symbol with 95 % of cash when holding nothing; then hold.
    BuyAndHold,
    /// Seeded random buys, sells and `calc` calls, keyed on (seed, session date).
    Random(u64),
}

/// One order of a plan.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct Order {
    pub side: Side,
    pub symbol: String,
    pub quantity: u64,
}

/// What a strategy wants on a day: an optional `calc` expression to evaluate first, and orders
/// (sells before buys).
#[derive(Clone, Debug, Default, PartialEq)]
pub(crate) struct Plan {
    pub calc: Option<String>,
    pub orders: Vec<Order>,
}

/// Guards `floor` against results like 87.99999999 for an exact 88.
const FLOOR_EPSILON: f64 = 1e-9;

impl Strategy {
    /// The next assistant turn.
    pub fn respond(self, conversation: &Conversation) -> Reply {
        let session = &conversation.session;
        let observation = &conversation.observation;
        if session.universe.is_empty() {
            return Reply::answer(
                "No `Universe:` line in the user message, so there is nothing to trade.",
            );
        }
        if observation.turns == 0 {
            return self.observe(session);
        }
        let plan = self.plan(session, observation);
        if let Some(expression) = &plan.calc
            && !observation.calc_issued
            && observation.trades.is_empty()
        {
            return Reply::calls([("calc".to_owned(), json!({ "expression": expression }))]);
        }
        let pending: Vec<&Order> = plan
            .orders
            .iter()
            .filter(|order| {
                !observation
                    .trades
                    .iter()
                    .any(|trade| trade.side == order.side && trade.symbol == order.symbol)
            })
            .collect();
        if !pending.is_empty() {
            return Reply::calls(pending.into_iter().map(|order| {
                (
                    order.side.tool().to_owned(),
                    json!({ "symbol": order.symbol, "quantity": order.quantity }),
                )
            }));
        }
        if observation.trades.is_empty() {
            Reply::answer(format!(
                "No trades on {}: {}.",
                session.date.as_deref().unwrap_or("this day"),
                self.reason_for_no_trades()
            ))
        } else {
            Reply::answer(summarize(&observation.trades))
        }
    }

    /// Step 1: the portfolio, every symbol's price and, for the signal-driven strategies, news.
    fn observe(self, session: &Session) -> Reply {
        let mut calls = vec![("get_portfolio".to_owned(), json!({}))];
        calls.extend(
            session
                .universe
                .iter()
                .map(|symbol| ("get_price".to_owned(), json!({ "symbol": symbol }))),
        );
        if matches!(self, Strategy::Momentum | Strategy::MeanReversion) {
            calls.push((
                "search_news".to_owned(),
                json!({ "query": session.universe[0], "limit": 3 }),
            ));
        }
        Reply::calls(calls)
    }

    /// The day's plan, from the first portfolio and price results.
    pub fn plan(self, session: &Session, observation: &Observation) -> Plan {
        let empty = Portfolio::default();
        let portfolio = observation.portfolio.as_ref().unwrap_or(&empty);
        // Symbols with a price, in universe order.
        let quoted = session
            .universe
            .iter()
            .filter_map(|symbol| Some((symbol, observation.quotes.get(symbol)?)))
            .filter(|(_, quote)| quote.price > 0.0);
        match self {
            Strategy::Momentum | Strategy::MeanReversion => {
                let rising_is_good = self == Strategy::Momentum;
                let mut sells = Vec::new();
                let mut candidates = Vec::new();
                for (symbol, quote) in quoted {
                    let Some((previous_close, _)) = quote.previous_close else {
                        continue;
                    };
                    if quote.price == previous_close {
                        continue;
                    }
                    let good = (quote.price > previous_close) == rising_is_good;
                    let held = whole(portfolio.held(symbol));
                    if !good && held >= 1 {
                        sells.push(Order {
                            side: Side::Sell,
                            symbol: symbol.clone(),
                            quantity: held,
                        });
                    } else if good && portfolio.held(symbol) <= 0.0 {
                        candidates.push((symbol, quote.price));
                    }
                }
                let buys = split_budget(portfolio.cash * 0.9, &candidates);
                Plan {
                    calc: None,
                    orders: sells.into_iter().chain(buys).collect(),
                }
            }
            Strategy::BuyAndHold => {
                if portfolio
                    .positions
                    .iter()
                    .any(|(_, quantity)| *quantity > 0.0)
                {
                    return Plan::default();
                }
                let candidates: Vec<(&String, f64)> = quoted
                    .map(|(symbol, quote)| (symbol, quote.price))
                    .collect();
                Plan {
                    calc: None,
                    orders: split_budget(portfolio.cash * 0.95, &candidates),
                }
            }
            Strategy::Random(seed) => {
                let date = session.date.as_deref().unwrap_or_default();
                let mut rng = SplitMix64::new(seed ^ fnv1a(date.as_bytes()));
                let wants_calc = rng.below(3) == 0;
                let mut calc = None;
                let mut sells = Vec::new();
                let mut buys = Vec::new();
                // Keep 2 % of cash for fees.
                let mut cash_left = portfolio.cash * 0.98;
                for (symbol, quote) in quoted {
                    // Two draws per symbol whatever happens, so one symbol's outcome does not
                    // shift the next one's.
                    let action = rng.below(3);
                    let size = 1 + rng.below(5);
                    if wants_calc
                        && calc.is_none()
                        && let Some((_, close_text)) = &quote.previous_close
                    {
                        calc = Some(format!(
                            "({} - {close_text}) / {close_text} * 100",
                            quote.price_text
                        ));
                    }
                    match action {
                        0 => {
                            let affordable = floor_u64(cash_left / quote.price);
                            let quantity = size.min(affordable);
                            if quantity >= 1 {
                                cash_left -= quantity as f64 * quote.price;
                                buys.push(Order {
                                    side: Side::Buy,
                                    symbol: symbol.clone(),
                                    quantity,
                                });
                            }
                        }
                        1 => {
                            let quantity = size.min(whole(portfolio.held(symbol)));
                            if quantity >= 1 {
                                sells.push(Order {
                                    side: Side::Sell,
                                    symbol: symbol.clone(),
                                    quantity,
                                });
                            }
                        }
                        _ => {}
                    }
                }
                Plan {
                    calc,
                    orders: sells.into_iter().chain(buys).collect(),
                }
            }
        }
    }

    fn reason_for_no_trades(self) -> &'static str {
        match self {
            Strategy::Momentum => {
                "no held symbol fell below its previous close and no unheld symbol rose above it"
            }
            Strategy::MeanReversion => {
                "no held symbol rose above its previous close and no unheld symbol fell below it"
            }
            Strategy::BuyAndHold => "holding the existing positions",
            Strategy::Random(_) => "the dice said hold",
        }
    }
}

/// Buys of each candidate for an equal share of `budget`, whole units, skipping zero.
fn split_budget(budget: f64, candidates: &[(&String, f64)]) -> Vec<Order> {
    if candidates.is_empty() || budget <= 0.0 {
        return Vec::new();
    }
    let share = budget / candidates.len() as f64;
    candidates
        .iter()
        .filter_map(|(symbol, price)| {
            let quantity = floor_u64(share / price);
            (quantity >= 1).then(|| Order {
                side: Side::Buy,
                symbol: (*symbol).clone(),
                quantity,
            })
        })
        .collect()
}

/// Whole units of a holding.
fn whole(quantity: f64) -> u64 {
    floor_u64(quantity)
}

fn floor_u64(value: f64) -> u64 {
    if value.is_finite() && value > 0.0 {
        // Saturating cast: quantities here are far below u64::MAX.
        (value + FLOOR_EPSILON).floor() as u64
    } else {
        0
    }
}

/// "Bought 10 AAA; sold 5 BBB." plus any rejections.
fn summarize(trades: &[IssuedTrade]) -> String {
    let parts: Vec<String> = trades
        .iter()
        .map(|trade| {
            let verb = match trade.side {
                Side::Buy => "bought",
                Side::Sell => "sold",
            };
            match &trade.outcome {
                Some(TradeOutcome::Filled { quantity }) => {
                    format!("{verb} {quantity} {}", trade.symbol)
                }
                Some(TradeOutcome::Rejected(reason)) => format!(
                    "{} {} {} rejected ({reason})",
                    trade.side.tool(),
                    trade.requested,
                    trade.symbol
                ),
                None => format!(
                    "{} {} {} unanswered",
                    trade.side.tool(),
                    trade.requested,
                    trade.symbol
                ),
            }
        })
        .collect();
    let mut summary = parts.join("; ");
    if let Some(first) = summary.get(..1) {
        summary.replace_range(..1, &first.to_ascii_uppercase());
    }
    summary.push('.');
    summary
}

/// SplitMix64: a small seeded generator, so the `random` policy repeats exactly.
struct SplitMix64(u64);

impl SplitMix64 {
    fn new(seed: u64) -> Self {
        SplitMix64(seed)
    }

    fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        splitmix64_mix(self.0)
    }

    /// Uniform-enough in `[0, bound)` for a test policy.
    fn below(&mut self, bound: u64) -> u64 {
        self.next() % bound
    }
}

/// The SplitMix64 output function (the same as the LLM client's jitter uses; a copy, so that
/// the client does not export a hash function for the mock).
fn splitmix64_mix(mut z: u64) -> u64 {
    z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    z ^ (z >> 31)
}

#[cfg(test)]
mod tests {
    use std::collections::HashMap;

    use super::*;
    use crate::conversation::Quote;

    fn session() -> Session {
        Session {
            date: Some("2025-01-03".into()),
            universe: vec!["AAA".into(), "BBB".into(), "CCC".into()],
        }
    }

    fn quote(price: f64, previous_close: Option<f64>) -> Quote {
        Quote {
            price,
            price_text: format!("{price:.2}"),
            previous_close: previous_close.map(|close| (close, format!("{close:.2}"))),
        }
    }

    /// AAA rises, BBB falls, CCC has no previous close.
    fn observation(cash: f64, positions: &[(&str, f64)]) -> Observation {
        Observation {
            turns: 1,
            portfolio: Some(Portfolio {
                cash,
                positions: positions.iter().map(|(s, q)| ((*s).into(), *q)).collect(),
            }),
            quotes: HashMap::from([
                ("AAA".into(), quote(101.2, Some(100.1))),
                ("BBB".into(), quote(50.0, Some(52.0))),
                ("CCC".into(), quote(20.0, None)),
            ]),
            trades: Vec::new(),
            calc_issued: false,
        }
    }

    fn order(side: Side, symbol: &str, quantity: u64) -> Order {
        Order {
            side,
            symbol: symbol.into(),
            quantity,
        }
    }

    #[test]
    fn momentum_sells_held_fallers_and_buys_unheld_risers() {
        let plan = Strategy::Momentum.plan(&session(), &observation(10_000.0, &[("BBB", 7.0)]));
        // 10000 × 0.9 / 101.2 = 88.93
        assert_eq!(
            plan.orders,
            vec![order(Side::Sell, "BBB", 7), order(Side::Buy, "AAA", 88)]
        );
        assert_eq!(plan.calc, None);
    }

    #[test]
    fn mean_reversion_is_the_mirror() {
        let plan = Strategy::MeanReversion.plan(&session(), &observation(1_000.0, &[("AAA", 3.0)]));
        // 1000 × 0.9 / 50 = 18
        assert_eq!(
            plan.orders,
            vec![order(Side::Sell, "AAA", 3), order(Side::Buy, "BBB", 18)]
        );
    }

    #[test]
    fn buy_and_hold_buys_everything_once() {
        let plan = Strategy::BuyAndHold.plan(&session(), &observation(3_000.0, &[]));
        // 3000 × 0.95 / 3 = 950 each
        assert_eq!(
            plan.orders,
            vec![
                order(Side::Buy, "AAA", 9),
                order(Side::Buy, "BBB", 19),
                order(Side::Buy, "CCC", 47)
            ]
        );
        let held = Strategy::BuyAndHold.plan(&session(), &observation(3_000.0, &[("CCC", 1.0)]));
        assert!(held.orders.is_empty());
    }

    #[test]
    fn random_is_repeatable_and_stays_within_cash_and_holdings() {
        let mut days_with_calc = 0;
        let mut days_with_trades = 0;
        for seed in 0..200 {
            let observation = observation(500.0, &[("BBB", 2.0)]);
            let plan = Strategy::Random(seed).plan(&session(), &observation);
            assert_eq!(plan, Strategy::Random(seed).plan(&session(), &observation));
            let spent: f64 = plan
                .orders
                .iter()
                .filter(|o| o.side == Side::Buy)
                .map(|o| o.quantity as f64 * observation.quotes[&o.symbol].price)
                .sum();
            assert!(spent <= 500.0 * 0.98, "seed {seed}: {plan:?}");
            for sell in plan.orders.iter().filter(|o| o.side == Side::Sell) {
                assert_eq!(sell.symbol, "BBB", "seed {seed}");
                assert!((1..=2).contains(&sell.quantity), "seed {seed}");
            }
            let first_buy = plan.orders.iter().position(|o| o.side == Side::Buy);
            let last_sell = plan.orders.iter().rposition(|o| o.side == Side::Sell);
            if let (Some(buy), Some(sell)) = (first_buy, last_sell) {
                assert!(sell < buy, "seed {seed}: sells first");
            }
            days_with_calc += usize::from(plan.calc.is_some());
            days_with_trades += usize::from(!plan.orders.is_empty());
        }
        assert!((30..120).contains(&days_with_calc), "{days_with_calc}");
        assert!(days_with_trades > 100, "{days_with_trades}");
    }

    #[test]
    fn random_depends_on_the_date() {
        let observation = observation(5_000.0, &[("BBB", 5.0)]);
        let mut other_day = session();
        other_day.date = Some("2025-01-06".into());
        let differs = (0..20).any(|seed| {
            Strategy::Random(seed).plan(&session(), &observation)
                != Strategy::Random(seed).plan(&other_day, &observation)
        });
        assert!(differs);
    }

    #[test]
    fn summary_names_fills_and_rejections() {
        let trades = vec![
            IssuedTrade {
                side: Side::Buy,
                symbol: "AAA".into(),
                requested: "10".into(),
                outcome: Some(TradeOutcome::Filled {
                    quantity: "10".into(),
                }),
            },
            IssuedTrade {
                side: Side::Sell,
                symbol: "BBB".into(),
                requested: "5".into(),
                outcome: Some(TradeOutcome::Filled {
                    quantity: "5".into(),
                }),
            },
            IssuedTrade {
                side: Side::Buy,
                symbol: "CCC".into(),
                requested: "4".into(),
                outcome: Some(TradeOutcome::Rejected("insufficient cash".into())),
            },
        ];
        assert_eq!(
            summarize(&trades),
            "Bought 10 AAA; sold 5 BBB; buy 4 CCC rejected (insufficient cash)."
        );
    }
}
