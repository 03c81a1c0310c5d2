//! The simulated venue's matching rules for one order against one bar (see [`crate::fill_model`]
//! for the intrabar path). Pure functions; the engine owns the order book.

use tradeloom_core::{Bar, Liquidity, Order, OrderSide, OrderStatus, OrderType, Price};

use crate::config::Slippage;

/// What a bar did to a working order.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Outcome {
    /// Nothing reached the order.
    Rest,
    /// A stop-limit's trigger traded but its limit did not (it now rests as a limit).
    Triggered,
    /// The order fills at `price` (`triggered` if a stop kind triggered on this bar).
    Fill {
        price: Price,
        liquidity: Liquidity,
        triggered: bool,
    },
}

/// `x` has reached `level` moving in the direction that matters: for a buy stop up through it,
/// for a buy limit down to it (and mirrored for sells).
fn stop_reached(side: OrderSide, x: Price, level: Price) -> bool {
    match side {
        OrderSide::Buy => x >= level,
        OrderSide::Sell => x <= level,
    }
}

fn limit_reached(side: OrderSide, x: Price, level: Price) -> bool {
    match side {
        OrderSide::Buy => x <= level,
        OrderSide::Sell => x >= level,
    }
}

/// Matches a working order against a bar it is eligible for.
pub(crate) fn match_order(order: &Order, bar: &Bar, path: &[Price; 4]) -> Outcome {
    let side = order.side;
    let open = path[0];
    let triggered_before = order.status() == OrderStatus::Triggered;
    match order.order_type {
        OrderType::Market => Outcome::Fill {
            price: bar.open,
            liquidity: Liquidity::Taker,
            triggered: false,
        },
        OrderType::Limit => match_limit(side, order.price, path, false),
        OrderType::StopLimit if triggered_before => match_limit(side, order.price, path, false),
        OrderType::Stop | OrderType::StopLimit | OrderType::TrailingStop => {
            let Some(trigger) = order.trigger_price else {
                return Outcome::Rest;
            };
            // Where on the path the trigger trades: at the open on a gap, else at the trigger.
            let hit = if stop_reached(side, open, trigger) {
                Some((0, open))
            } else {
                (1..4)
                    .find(|&k| stop_reached(side, path[k], trigger))
                    .map(|k| (k, trigger))
            };
            let Some((k, at)) = hit else {
                return Outcome::Rest;
            };
            if order.order_type != OrderType::StopLimit {
                return Outcome::Fill {
                    price: at,
                    liquidity: Liquidity::Taker,
                    triggered: true,
                };
            }
            let Some(limit) = order.price else {
                return Outcome::Rest;
            };
            if limit_reached(side, at, limit) {
                return Outcome::Fill {
                    price: at,
                    liquidity: Liquidity::Taker,
                    triggered: true,
                };
            }
            // After the trigger, the rest of the path from point k on may reach the limit.
            if path[k..].iter().any(|&p| limit_reached(side, p, limit)) {
                Outcome::Fill {
                    price: limit,
                    liquidity: Liquidity::Maker,
                    triggered: true,
                }
            } else {
                Outcome::Triggered
            }
        }
    }
}

fn match_limit(side: OrderSide, limit: Option<Price>, path: &[Price; 4], _: bool) -> Outcome {
    let Some(limit) = limit else {
        return Outcome::Rest;
    };
    if limit_reached(side, path[0], limit) {
        return Outcome::Fill {
            price: path[0],
            liquidity: Liquidity::Maker,
            triggered: false,
        };
    }
    if path[1..].iter().any(|&p| limit_reached(side, p, limit)) {
        Outcome::Fill {
            price: limit,
            liquidity: Liquidity::Maker,
            triggered: false,
        }
    } else {
        Outcome::Rest
    }
}

/// Whether a just-submitted order is marketable against `close` (used by `bar_close`).
pub(crate) fn marketable_at(order: &Order, close: Price) -> Option<(Price, bool)> {
    let side = order.side;
    match order.order_type {
        OrderType::Market => Some((close, false)),
        OrderType::Limit => order
            .price
            .filter(|&l| limit_reached(side, close, l))
            .map(|_| (close, false)),
        OrderType::Stop | OrderType::TrailingStop => order
            .trigger_price
            .filter(|&t| stop_reached(side, close, t))
            .map(|_| (close, true)),
        OrderType::StopLimit => match (order.trigger_price, order.price) {
            (Some(t), Some(l)) if stop_reached(side, close, t) && limit_reached(side, close, l) => {
                Some((close, true))
            }
            _ => None,
        },
    }
}

/// Applies adverse slippage to a taker fill; never below one tick.
pub(crate) fn slip(price: Price, side: OrderSide, slippage: Slippage, tick: Price) -> Price {
    let amount = match slippage {
        Slippage::None => return price,
        Slippage::Bps(bps) => bps.of_price(price).round_to_step(tick).raw(),
        Slippage::Ticks(n) => tick.raw().saturating_mul(i64::from(n)),
    };
    let raw = match side {
        OrderSide::Buy => price.raw().saturating_add(amount),
        OrderSide::Sell => price.raw().saturating_sub(amount).max(tick.raw().max(1)),
    };
    Price::from_raw(raw, price.precision())
}

#[cfg(test)]
#[allow(clippy::unwrap_used)] // tests fail loudly on an unexpected error
mod tests {
    use super::*;
    use crate::fill_model::intrabar_path;
    use tradeloom_core::{Bps, InstrumentId, OrderId, Quantity, TimeInForce, UnixNanos};

    fn p(s: &str) -> Price {
        Price::parse(s, 2).unwrap()
    }

    fn bar(o: &str, h: &str, l: &str, c: &str) -> Bar {
        Bar {
            instrument: InstrumentId(0),
            ts: UnixNanos(0),
            open: p(o),
            high: p(h),
            low: p(l),
            close: p(c),
            volume: Quantity::ZERO,
        }
    }

    fn order(side: OrderSide, t: OrderType, price: Option<&str>, trigger: Option<&str>) -> Order {
        let mut o = Order::new(
            OrderId(1),
            InstrumentId(0),
            side,
            t,
            Quantity::from_int(1, 0),
            price.map(p),
            trigger.map(p),
            TimeInForce::Gtc,
            false,
            UnixNanos(0),
        )
        .unwrap();
        o.submit().unwrap();
        o.accept().unwrap();
        o
    }

    fn fill_price(o: &Order, b: &Bar) -> Option<String> {
        match match_order(o, b, &intrabar_path(b)) {
            Outcome::Fill { price, .. } => Some(price.to_string()),
            _ => None,
        }
    }

    #[test]
    fn limits_fill_at_their_price_or_a_better_open() {
        let b = bar("10", "11", "9", "10.5");
        assert_eq!(
            fill_price(
                &order(OrderSide::Buy, OrderType::Limit, Some("9.5"), None),
                &b
            )
            .as_deref(),
            Some("9.50")
        );
        assert_eq!(
            fill_price(
                &order(OrderSide::Buy, OrderType::Limit, Some("10.2"), None),
                &b
            )
            .as_deref(),
            Some("10.00"),
            "gap: the open is better"
        );
        assert_eq!(
            fill_price(
                &order(OrderSide::Buy, OrderType::Limit, Some("8.99"), None),
                &b
            ),
            None
        );
        assert_eq!(
            fill_price(
                &order(OrderSide::Sell, OrderType::Limit, Some("10.8"), None),
                &b
            )
            .as_deref(),
            Some("10.80")
        );
    }

    #[test]
    fn stops_fill_at_trigger_or_a_worse_open() {
        let b = bar("10", "11", "9", "10.5");
        assert_eq!(
            fill_price(
                &order(OrderSide::Buy, OrderType::Stop, None, Some("10.7")),
                &b
            )
            .as_deref(),
            Some("10.70")
        );
        assert_eq!(
            fill_price(
                &order(OrderSide::Sell, OrderType::Stop, None, Some("10.2")),
                &b
            )
            .as_deref(),
            Some("10.00"),
            "gap through the stop fills at the open"
        );
        assert_eq!(
            fill_price(
                &order(OrderSide::Buy, OrderType::Stop, None, Some("11.01")),
                &b
            ),
            None
        );
    }

    #[test]
    fn stop_limit_follows_the_path_after_its_trigger() {
        // path: 10 → 11 → 9 → 10.5 (high is nearer)
        let b = bar("10", "11", "9", "10.5");
        let sl = order(
            OrderSide::Buy,
            OrderType::StopLimit,
            Some("9.5"),
            Some("10.8"),
        );
        // triggers at 10.8 on the way to 11, then the path goes down to 9: limit 9.5 fills
        assert_eq!(fill_price(&sl, &b).as_deref(), Some("9.50"));
        // path: 10 → 9.5 → 13 → 12 (low is nearer): triggered at 10.8 on the way up, never back to 9.6
        let b2 = bar("10", "13", "9.5", "12");
        let sl2 = order(
            OrderSide::Buy,
            OrderType::StopLimit,
            Some("9.6"),
            Some("10.8"),
        );
        assert_eq!(
            match_order(&sl2, &b2, &intrabar_path(&b2)),
            Outcome::Triggered
        );
    }

    #[test]
    fn slippage_is_adverse_and_tick_rounded() {
        let tick = p("0.01");
        assert_eq!(
            slip(
                p("100"),
                OrderSide::Buy,
                Slippage::Bps(Bps::parse("5").unwrap()),
                tick
            )
            .to_string(),
            "100.05"
        );
        assert_eq!(
            slip(p("100"), OrderSide::Sell, Slippage::Ticks(3), tick).to_string(),
            "99.97"
        );
    }
}
