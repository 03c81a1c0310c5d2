//! Pre-trade risk: every order passes these checks before it reaches the venue. A failed check
//! rejects the order with a stable code and a reason that names the limit and the values.

use std::fmt;

use tradeloom_core::fixed::format_raw;
use tradeloom_core::{
    AccountKind, Bps, Instrument, Liquidity, Money, Order, OrderSide, Position, Price, Quantity,
    Symbol,
};

use crate::config::RiskLimits;

/// Why the pre-trade checks rejected an order. [`RiskRejection::code`] is the stable code the
/// journal records; `Display` is the reason a person reads.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum RiskRejection {
    /// The kill switch of the run's risk limits has engaged; trading stays halted.
    Halted,
    /// An operator's kill switch stops new orders.
    KillSwitch {
        /// The operator's reason.
        reason: String,
    },
    /// A margin call stopped trading for the rest of the run.
    MarginCall {
        /// What the margin call said.
        reason: String,
    },
    /// A paper run's market data is older than its `max_data_age`.
    StaleData {
        /// How old the data is and the limit.
        reason: String,
    },
    /// A reduce-only order would open or grow a position.
    ReduceOnly {
        /// The order's side.
        side: OrderSide,
        /// The order's quantity.
        quantity: Quantity,
        /// The signed position the order would not only reduce.
        position: String,
    },
    /// The quantity is not a multiple of the instrument's lot size.
    LotSize {
        /// The order's quantity.
        quantity: Quantity,
        /// The instrument's lot size.
        lot_size: Quantity,
        /// The instrument.
        symbol: Symbol,
    },
    /// The quantity is below the instrument's minimum.
    BelowMinimum {
        /// The order's quantity.
        quantity: Quantity,
        /// The instrument's minimum quantity.
        minimum: Quantity,
        /// The instrument.
        symbol: Symbol,
    },
    /// A limit or trigger price is not a multiple of the instrument's tick size.
    TickSize {
        /// The offending price.
        price: Price,
        /// The instrument's tick size.
        tick_size: Price,
        /// The instrument.
        symbol: Symbol,
    },
    /// The order's notional cannot be computed (it overflows).
    Notional {
        /// Why.
        message: String,
    },
    /// The order's notional is above `max_order_notional`.
    MaxOrderNotional {
        /// The order's notional.
        notional: Money,
        /// The limit.
        limit: Money,
    },
    /// The position after the order would be above `max_position` (and larger than now).
    MaxPosition {
        /// The signed raw quantity (9 decimals) the position would be.
        after_raw: i64,
        /// The instrument's size precision, for printing `after_raw`.
        size_precision: u8,
        /// The instrument.
        symbol: Symbol,
        /// The limit, raw (9 decimals).
        max_raw: i64,
    },
    /// The gross exposure after the order would be above `max_gross_exposure`.
    MaxGrossExposure {
        /// The gross exposure after the order, rounded to the currency.
        gross: Money,
        /// The limit.
        limit: Money,
    },
    /// A cash account's sell would open a short position.
    NoShorting {
        /// The sell's quantity.
        quantity: Quantity,
    },
    /// A cash account's sell would open a short position once its working sells fill.
    NoShortingWithWorkingSells {
        /// The sell's quantity.
        quantity: Quantity,
        /// Raw quantity (9 decimals) of the working sells of the instrument.
        working_sells_raw: i64,
        /// The instrument's size precision, for printing `working_sells_raw`.
        size_precision: u8,
        /// The signed position now.
        position: String,
    },
    /// A cash account's buy needs more cash than is free.
    InsufficientCash {
        /// Notional plus fee.
        needed: Money,
        /// The order's notional.
        notional: Money,
        /// The taker fee on the notional.
        fee: Money,
        /// The account's cash.
        cash: Money,
        /// Cash held for working buys (rounded), if any.
        held: Option<Money>,
    },
}

impl RiskRejection {
    /// The stable code recorded in the journal (`risk.max_position`, `order.invalid`, …).
    pub fn code(&self) -> &'static str {
        match self {
            RiskRejection::Halted | RiskRejection::KillSwitch { .. } => "risk.kill_switch",
            RiskRejection::MarginCall { .. } => "risk.margin_call",
            RiskRejection::StaleData { .. } => "risk.stale_data",
            RiskRejection::ReduceOnly { .. } => "order.reduce_only",
            RiskRejection::LotSize { .. }
            | RiskRejection::BelowMinimum { .. }
            | RiskRejection::TickSize { .. }
            | RiskRejection::Notional { .. } => "order.invalid",
            RiskRejection::MaxOrderNotional { .. } => "risk.max_order_notional",
            RiskRejection::MaxPosition { .. } => "risk.max_position",
            RiskRejection::MaxGrossExposure { .. } => "risk.max_gross_exposure",
            RiskRejection::NoShorting { .. } | RiskRejection::NoShortingWithWorkingSells { .. } => {
                "account.no_shorting"
            }
            RiskRejection::InsufficientCash { .. } => "account.insufficient_cash",
        }
    }
}

impl fmt::Display for RiskRejection {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            RiskRejection::Halted => {
                f.write_str("trading is halted for the rest of the run (kill switch engaged)")
            }
            RiskRejection::KillSwitch { reason } => write!(f, "kill switch: {reason}"),
            RiskRejection::MarginCall { reason } => write!(
                f,
                "trading is halted for the rest of the run (margin call: {reason})"
            ),
            RiskRejection::StaleData { reason } => write!(f, "stale market data: {reason}"),
            RiskRejection::ReduceOnly {
                side,
                quantity,
                position,
            } => write!(
                f,
                "reduce-only {} {quantity} would not only reduce the position {position}",
                side.as_str()
            ),
            RiskRejection::LotSize {
                quantity,
                lot_size,
                symbol,
            } => write!(
                f,
                "quantity {quantity} is not a multiple of the lot size {lot_size} of {symbol}"
            ),
            RiskRejection::BelowMinimum {
                quantity,
                minimum,
                symbol,
            } => write!(
                f,
                "quantity {quantity} is below the minimum {minimum} of {symbol}"
            ),
            RiskRejection::TickSize {
                price,
                tick_size,
                symbol,
            } => write!(
                f,
                "price {price} is not a multiple of the tick size {tick_size} of {symbol}"
            ),
            RiskRejection::Notional { message } => f.write_str(message),
            RiskRejection::MaxOrderNotional { notional, limit } => write!(
                f,
                "order notional {notional} exceeds max_order_notional {limit}"
            ),
            RiskRejection::MaxPosition {
                after_raw,
                size_precision,
                symbol,
                max_raw,
            } => write!(
                f,
                "position after the order would be {} {symbol}, above max_position {}",
                format_raw(i128::from(*after_raw), 9, *size_precision),
                format_raw(i128::from(*max_raw), 9, 0),
            ),
            RiskRejection::MaxGrossExposure { gross, limit } => write!(
                f,
                "gross exposure after the order would be {gross}, above max_gross_exposure {limit}"
            ),
            RiskRejection::NoShorting { quantity } => write!(
                f,
                "sell {quantity} would open a short position; a cash account cannot short"
            ),
            RiskRejection::NoShortingWithWorkingSells {
                quantity,
                working_sells_raw,
                size_precision,
                position,
            } => write!(
                f,
                "sell {quantity} would open a short position once the working sells of {} fill (position {position}); a cash account cannot short",
                format_raw(i128::from(*working_sells_raw), 9, *size_precision),
            ),
            RiskRejection::InsufficientCash {
                needed,
                notional,
                fee,
                cash,
                held,
            } => {
                write!(
                    f,
                    "buy needs {needed} (notional {notional} + fee {fee}) but cash is {cash}"
                )?;
                match held {
                    Some(held) => write!(f, ", of which {held} is held for working buys"),
                    None => Ok(()),
                }
            }
        }
    }
}

impl std::error::Error for RiskRejection {}

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
    /// Why the market data is too old to trade on (a paper run's `max_data_age`), if it is.
    pub stale_data: Option<&'a str>,
    /// Cash accounts: raw quantity of the working sells of the order's instrument (they will
    /// reduce the position when they fill).
    pub working_sells_raw: i64,
    /// Cash accounts: cash that working buys will spend when they fill.
    pub reserved_cash: Money,
}

/// Runs every check in order; the first failure rejects (boxed: a rejection is rare and the
/// enum is large).
pub(crate) fn check(
    order: &Order,
    instrument: &Instrument,
    view: &RiskView<'_>,
) -> Result<(), Box<RiskRejection>> {
    if view.halted {
        return Err(Box::new(RiskRejection::Halted));
    }
    if let Some(reason) = view.kill_switch {
        return Err(Box::new(RiskRejection::KillSwitch {
            reason: reason.to_string(),
        }));
    }
    if let Some(reason) = view.margin_call {
        return Err(Box::new(RiskRejection::MarginCall {
            reason: reason.to_string(),
        }));
    }
    if let Some(reason) = view.stale_data {
        return Err(Box::new(RiskRejection::StaleData {
            reason: reason.to_string(),
        }));
    }
    check_instrument(order, instrument)?;
    let position = &view.positions[instrument.id.index()];
    let net = position.net_raw();
    let signed = order.quantity.raw() * order.side.sign();
    if order.reduce_only
        && (net == 0 || net.signum() == signed.signum() || signed.abs() > net.abs())
    {
        return Err(Box::new(RiskRejection::ReduceOnly {
            side: order.side,
            quantity: order.quantity,
            position: position.signed_quantity_string(),
        }));
    }
    let reference = order
        .price
        .or(order.trigger_price)
        .or(view.marks[instrument.id.index()]);
    let currency = view.cash.currency();
    let notional = match reference {
        Some(p) => Some(Money::notional(p, order.quantity, currency).map_err(|e| {
            RiskRejection::Notional {
                message: e.to_string(),
            }
        })?),
        None => None,
    };
    if let (Some(limit), Some(n)) = (view.limits.max_order_notional, notional)
        && n.raw() > limit.raw()
    {
        return Err(Box::new(RiskRejection::MaxOrderNotional {
            notional: n,
            limit,
        }));
    }
    let after = net.saturating_add(signed);
    if let Some(max) = view.limits.max_position_raw
        && after.abs() > max
        && after.abs() > net.abs()
    {
        return Err(Box::new(RiskRejection::MaxPosition {
            after_raw: after,
            size_precision: instrument.size_precision,
            symbol: instrument.symbol,
            max_raw: max,
        }));
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
            return Err(Box::new(RiskRejection::MaxGrossExposure {
                gross: Money::from_raw(gross, currency).rounded(),
                limit,
            }));
        }
    }
    if view.account_kind == AccountKind::Cash {
        // The position once every working sell of the instrument and this order have filled.
        let after_working = after.saturating_sub(view.working_sells_raw);
        match order.side {
            OrderSide::Sell if after_working < 0 => {
                return Err(Box::new(if view.working_sells_raw == 0 {
                    RiskRejection::NoShorting {
                        quantity: order.quantity,
                    }
                } else {
                    RiskRejection::NoShortingWithWorkingSells {
                        quantity: order.quantity,
                        working_sells_raw: view.working_sells_raw,
                        size_precision: instrument.size_precision,
                        position: position.signed_quantity_string(),
                    }
                }));
            }
            OrderSide::Buy => {
                if let Some(n) = notional {
                    let fee = fee_rate(instrument, Liquidity::Taker, view.fee).of_money(n);
                    let needed = n.raw() + fee.raw();
                    let reserved = view.reserved_cash.raw();
                    if needed > view.cash.raw().saturating_sub(reserved) {
                        return Err(Box::new(RiskRejection::InsufficientCash {
                            needed: Money::from_raw(needed, currency),
                            notional: n,
                            fee,
                            cash: view.cash,
                            held: (reserved != 0).then(|| view.reserved_cash.rounded()),
                        }));
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

fn check_instrument(order: &Order, instrument: &Instrument) -> Result<(), Box<RiskRejection>> {
    let q = order.quantity;
    if !q.fits_precision(instrument.size_precision) || !q.is_multiple_of(instrument.lot_size) {
        return Err(Box::new(RiskRejection::LotSize {
            quantity: q,
            lot_size: instrument.lot_size,
            symbol: instrument.symbol,
        }));
    }
    if q < instrument.min_quantity {
        return Err(Box::new(RiskRejection::BelowMinimum {
            quantity: q,
            minimum: instrument.min_quantity,
            symbol: instrument.symbol,
        }));
    }
    for price in [order.price, order.trigger_price].into_iter().flatten() {
        let tick = instrument.tick_size.raw();
        if tick > 0 && price.raw() % tick != 0 {
            return Err(Box::new(RiskRejection::TickSize {
                price,
                tick_size: instrument.tick_size,
                symbol: instrument.symbol,
            }));
        }
    }
    Ok(())
}
