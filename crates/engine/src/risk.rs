//! Pre-trade risk: every order passes these checks before it reaches the venue. A failed check
//! rejects the order with a stable code and a reason that names the limit and the values.

use tradeloom_core::{
    AccountKind, Bps, Instrument, Liquidity, Money, Order, OrderSide, Position, Price,
};

use crate::config::RiskLimits;

/// A rejection: stable code and human reason.
pub(crate) type Rejection = (&'static str, String);

/// What the checks look at.
pub(crate) struct RiskView<'a> {
    pub limits: &'a RiskLimits,
    pub account_kind: AccountKind,
    pub cash: Money,
    pub fee: Bps,
    pub positions: &'a [Position],
    pub marks: &'a [Option<Price>],
    pub halted: bool,
    /// Why an operator's kill switch stops new orders, if it does.
    pub kill_switch: Option<&'a str>,
    /// Why a margin call stopped trading, if one has.
    pub margin_call: Option<&'a str>,
    /// Cash accounts: raw quantity of the working sells of the order's instrument (they will
    /// reduce the position when they fill).
    pub working_sells_raw: i64,
    /// Cash accounts: cash that working buys will spend when they fill.
    pub reserved_cash: Money,
}

/// Runs every check in order; the first failure rejects.
pub(crate) fn check(
    order: &Order,
    instrument: &Instrument,
    view: &RiskView<'_>,
) -> Result<(), Rejection> {
    if view.halted {
        return Err((
            "risk.kill_switch",
            "trading is halted for the rest of the run (kill switch engaged)".to_string(),
        ));
    }
    if let Some(reason) = view.kill_switch {
        return Err(("risk.kill_switch", format!("kill switch: {reason}")));
    }
    if let Some(reason) = view.margin_call {
        return Err((
            "risk.margin_call",
            format!("trading is halted for the rest of the run (margin call: {reason})"),
        ));
    }
    check_instrument(order, instrument)?;
    let position = &view.positions[instrument.id.index()];
    let net = position.net_raw();
    let signed = order.quantity.raw() * order.side.sign();
    if order.reduce_only
        && (net == 0 || net.signum() == signed.signum() || signed.abs() > net.abs())
    {
        return Err((
            "order.reduce_only",
            format!(
                "reduce-only {} {} would not only reduce the position {}",
                order.side.as_str(),
                order.quantity,
                position.signed_quantity_string()
            ),
        ));
    }
    let reference = order
        .price
        .or(order.trigger_price)
        .or(view.marks[instrument.id.index()]);
    let currency = view.cash.currency();
    let notional = match reference {
        Some(p) => Some(
            Money::notional(p, order.quantity, currency)
                .map_err(|e| ("order.invalid", e.to_string()))?,
        ),
        None => None,
    };
    if let (Some(limit), Some(n)) = (view.limits.max_order_notional, notional)
        && n.raw() > limit.raw()
    {
        return Err((
            "risk.max_order_notional",
            format!("order notional {n} exceeds max_order_notional {limit}"),
        ));
    }
    let after = net.saturating_add(signed);
    if let Some(max) = view.limits.max_position_raw
        && after.abs() > max
        && after.abs() > net.abs()
    {
        return Err((
            "risk.max_position",
            format!(
                "position after the order would be {} {}, above max_position {}",
                tradeloom_core::fixed::format_raw(i128::from(after), 9, instrument.size_precision),
                instrument.symbol,
                tradeloom_core::fixed::format_raw(i128::from(max), 9, 0),
            ),
        ));
    }
    if let (Some(limit), Some(p)) = (view.limits.max_gross_exposure, reference) {
        let mut gross: i128 = 0;
        for (i, pos) in view.positions.iter().enumerate() {
            let (qty, mark) = if i == instrument.id.index() {
                (after, Some(p))
            } else {
                (pos.net_raw(), view.marks[i])
            };
            if let Some(m) = mark {
                gross = gross.saturating_add((i128::from(qty) * i128::from(m.raw())).abs());
            }
        }
        let current: i128 = view
            .positions
            .iter()
            .zip(view.marks)
            .filter_map(|(pos, m)| {
                m.map(|m| (i128::from(pos.net_raw()) * i128::from(m.raw())).abs())
            })
            .sum();
        if gross > limit.raw() && gross > current {
            return Err((
                "risk.max_gross_exposure",
                format!(
                    "gross exposure after the order would be {}, above max_gross_exposure {limit}",
                    Money::from_raw(gross, currency).rounded()
                ),
            ));
        }
    }
    if view.account_kind == AccountKind::Cash {
        // The position once every working sell of the instrument and this order have filled.
        let after_working = after.saturating_sub(view.working_sells_raw);
        match order.side {
            OrderSide::Sell if after_working < 0 => {
                let reason = if view.working_sells_raw == 0 {
                    format!(
                        "sell {} would open a short position; a cash account cannot short",
                        order.quantity
                    )
                } else {
                    format!(
                        "sell {} would open a short position once the working sells of {} fill (position {}); a cash account cannot short",
                        order.quantity,
                        tradeloom_core::fixed::format_raw(
                            i128::from(view.working_sells_raw),
                            9,
                            instrument.size_precision
                        ),
                        position.signed_quantity_string()
                    )
                };
                return Err(("account.no_shorting", reason));
            }
            OrderSide::Buy => {
                if let Some(n) = notional {
                    let fee = fee_rate(instrument, Liquidity::Taker, view.fee).of_money(n);
                    let needed = n.raw() + fee.raw();
                    let reserved = view.reserved_cash.raw();
                    if needed > view.cash.raw().saturating_sub(reserved) {
                        let held = if reserved == 0 {
                            String::new()
                        } else {
                            format!(
                                ", of which {} is held for working buys",
                                view.reserved_cash.rounded()
                            )
                        };
                        return Err((
                            "account.insufficient_cash",
                            format!(
                                "buy needs {} (notional {n} + fee {fee}) but cash is {}{held}",
                                Money::from_raw(needed, currency),
                                view.cash
                            ),
                        ));
                    }
                }
            }
            OrderSide::Sell => {}
        }
    }
    Ok(())
}

/// The fee rate of a fill: the instrument's maker or taker fee, or the run's default when the
/// instrument sets neither.
pub(crate) fn fee_rate(instrument: &Instrument, liquidity: Liquidity, default: Bps) -> Bps {
    if instrument.maker_fee.is_zero() && instrument.taker_fee.is_zero() {
        default
    } else {
        match liquidity {
            Liquidity::Maker => instrument.maker_fee,
            Liquidity::Taker => instrument.taker_fee,
        }
    }
}

fn check_instrument(order: &Order, instrument: &Instrument) -> Result<(), Rejection> {
    let q = order.quantity;
    if !q.fits_precision(instrument.size_precision) || !q.is_multiple_of(instrument.lot_size) {
        return Err((
            "order.invalid",
            format!(
                "quantity {q} is not a multiple of the lot size {} of {}",
                instrument.lot_size, instrument.symbol
            ),
        ));
    }
    if q < instrument.min_quantity {
        return Err((
            "order.invalid",
            format!(
                "quantity {q} is below the minimum {} of {}",
                instrument.min_quantity, instrument.symbol
            ),
        ));
    }
    for price in [order.price, order.trigger_price].into_iter().flatten() {
        let tick = instrument.tick_size.raw();
        if tick > 0 && price.raw() % tick != 0 {
            return Err((
                "order.invalid",
                format!(
                    "price {price} is not a multiple of the tick size {} of {}",
                    instrument.tick_size, instrument.symbol
                ),
            ));
        }
    }
    Ok(())
}
