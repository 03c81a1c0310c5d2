//! [`Trade`]: a round trip — from a flat position to flat again (a reversal closes one trade and
//! opens the next at the same fill).

use serde::Serialize;
use tradeloom_core::fixed::mul_div;
use tradeloom_core::{
    ArithmeticError, Currency, Fill, InstrumentId, Money, OrderSide, PositionChange, Price,
    Quantity, Symbol, UnixNanos,
};

/// One round trip of one instrument.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct Trade {
    /// Run-unique, in order of opening, from 1.
    pub id: u64,
    /// The instrument's symbol.
    pub symbol: Symbol,
    /// The instrument.
    #[serde(skip)]
    pub instrument: InstrumentId,
    /// `BUY` for a long trade, `SELL` for a short one.
    pub side: OrderSide,
    /// Total quantity entered.
    pub quantity: Quantity,
    /// Timestamp of the first fill.
    pub entry_ts: UnixNanos,
    /// Volume-weighted entry price.
    pub entry_price: Price,
    /// `None` while the trade is open.
    pub exit_ts: Option<UnixNanos>,
    /// Volume-weighted exit price, `None` while open.
    pub exit_price: Option<Price>,
    /// Realised PnL before fees (for an open trade: unrealised at the last close).
    pub gross_pnl: Money,
    /// Fees of the fills that opened and closed it.
    pub fees: Money,
    /// `gross_pnl − fees`.
    pub net_pnl: Money,
    /// Bars of the instrument from entry to exit.
    pub bars: u64,
}

impl Trade {
    /// Whether the trade is still open at the end.
    pub fn is_open(&self) -> bool {
        self.exit_ts.is_none()
    }
}

/// Builds trades from fills for one instrument.
#[derive(Clone, Debug)]
pub(crate) struct TradeTracker {
    open: Option<OpenTrade>,
}

#[derive(Clone, Debug)]
struct OpenTrade {
    id: u64,
    side: OrderSide,
    entry_ts: UnixNanos,
    entry_bar: u64,
    entry_qty: i64,
    entry_notional: i128,
    exit_qty: i64,
    exit_notional: i128,
    gross: i128,
    fees: i128,
}

fn vwap(notional: i128, qty: i64, precision: u8) -> Price {
    let q = i128::from(qty.max(1));
    let raw = (notional + q / 2) / q;
    Price::from_raw(i64::try_from(raw).unwrap_or(i64::MAX), precision)
}

impl TradeTracker {
    pub(crate) fn new() -> Self {
        Self { open: None }
    }

    /// Books a fill that made `change`; returns the trade it closed, if any.
    #[allow(clippy::too_many_arguments)]
    pub(crate) fn on_fill(
        &mut self,
        fill: &Fill,
        change: &PositionChange,
        bar_index: u64,
        next_trade_id: &mut u64,
        symbol: Symbol,
        price_precision: u8,
        size_precision: u8,
        currency: Currency,
    ) -> Result<Option<Trade>, ArithmeticError> {
        let qty = fill.quantity.raw();
        let px = i128::from(fill.price.raw());
        let fee = fill.fee.raw();
        let close_fee = if change.closed_raw == qty {
            fee
        } else {
            mul_div(fee, i128::from(change.closed_raw), i128::from(qty))
                .ok_or(ArithmeticError("fee split"))?
        };
        let mut closed = None;
        if change.closed_raw > 0 {
            if let Some(t) = self.open.as_mut() {
                t.exit_qty += change.closed_raw;
                t.exit_notional += i128::from(change.closed_raw) * px;
                t.gross += change.realized.raw();
                t.fees += close_fee;
            }
            if change.closed_round_trip()
                && let Some(t) = self.open.take()
            {
                closed = Some(Trade {
                    id: t.id,
                    symbol,
                    instrument: fill.instrument,
                    side: t.side,
                    quantity: Quantity::from_raw(t.entry_qty, size_precision)?,
                    entry_ts: t.entry_ts,
                    entry_price: vwap(t.entry_notional, t.entry_qty, price_precision),
                    exit_ts: Some(fill.ts),
                    exit_price: Some(vwap(t.exit_notional, t.exit_qty, price_precision)),
                    gross_pnl: Money::from_raw(t.gross, currency),
                    fees: Money::from_raw(t.fees, currency),
                    net_pnl: Money::from_raw(t.gross - t.fees, currency),
                    bars: bar_index.saturating_sub(t.entry_bar),
                });
            }
        }
        if change.opened_raw > 0 {
            let open_fee = fee - close_fee;
            let t = self.open.get_or_insert_with(|| {
                *next_trade_id += 1;
                OpenTrade {
                    id: *next_trade_id,
                    side: fill.side,
                    entry_ts: fill.ts,
                    entry_bar: bar_index,
                    entry_qty: 0,
                    entry_notional: 0,
                    exit_qty: 0,
                    exit_notional: 0,
                    gross: 0,
                    fees: 0,
                }
            });
            t.entry_qty += change.opened_raw;
            t.entry_notional += i128::from(change.opened_raw) * px;
            t.fees += open_fee;
        }
        Ok(closed)
    }

    /// The still-open trade, marked at `unrealized`.
    #[allow(clippy::too_many_arguments)]
    pub(crate) fn open_trade(
        &self,
        instrument: InstrumentId,
        symbol: Symbol,
        unrealized: Money,
        bar_index: u64,
        price_precision: u8,
        size_precision: u8,
    ) -> Option<Trade> {
        let t = self.open.as_ref()?;
        let currency = unrealized.currency();
        let gross = t.gross + unrealized.raw();
        Some(Trade {
            id: t.id,
            symbol,
            instrument,
            side: t.side,
            quantity: Quantity::from_raw(t.entry_qty, size_precision).ok()?,
            entry_ts: t.entry_ts,
            entry_price: vwap(t.entry_notional, t.entry_qty, price_precision),
            exit_ts: None,
            exit_price: None,
            gross_pnl: Money::from_raw(gross, currency),
            fees: Money::from_raw(t.fees, currency),
            net_pnl: Money::from_raw(gross - t.fees, currency),
            bars: bar_index.saturating_sub(t.entry_bar),
        })
    }
}
