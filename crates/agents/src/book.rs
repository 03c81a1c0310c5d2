//! [`Book`]: one model's cash and share holdings, traded exactly (fixed-point money, whole
//! shares) with fees rounded to the currency's precision.

use std::collections::BTreeMap;

use tradeloom_core::{ArithmeticError, Bps, Currency, Decimal, Money, Price, Quantity};
use tradeloom_store::{Holding, Trade, TradeAction};

/// An order or valuation the book refuses.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum BookError {
    /// Cash does not cover the notional and the fee.
    #[error(
        "insufficient cash: buying {} {} at {} costs {} + fee {} = {}, cash is {}",
        .0.quantity, .0.symbol, .0.price, .0.notional, .0.fee, .0.cost, .0.cash
    )]
    InsufficientCash(Box<Shortfall>),
    /// A sale beyond the holding (`held`, `0` when none).
    #[error("cannot sell {quantity} {symbol}: holding {held}; short selling is not allowed")]
    ShortSale {
        symbol: String,
        quantity: Quantity,
        held: String,
    },
    /// A holding without a price to value it at.
    #[error("no price to value {0}")]
    NoPrice(String),
    #[error(transparent)]
    Arithmetic(#[from] ArithmeticError),
}

/// A buy that cash does not cover: what it would have cost, and the cash there was.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Shortfall {
    pub symbol: String,
    pub quantity: Quantity,
    pub price: Price,
    pub notional: Money,
    pub fee: Money,
    /// `notional + fee`.
    pub cost: Money,
    pub cash: Money,
}

/// Cash and holdings of one model. Holdings are whole shares (`Quantity` at precision 0),
/// never negative: short selling is refused.
#[derive(Clone, Debug, PartialEq)]
pub struct Book {
    cash: Money,
    holdings: BTreeMap<String, Quantity>,
    fee: Bps,
}

/// What a trade did, for the tool's answer and the `positions` row.
#[derive(Clone, Debug, PartialEq)]
pub struct Execution {
    pub action: TradeAction,
    pub symbol: String,
    pub quantity: Quantity,
    pub price: Price,
    pub fee: Money,
    pub cash_after: Money,
}

impl Execution {
    /// As a `positions` row of agent step `step`.
    pub fn to_trade(&self, step: u32) -> Trade {
        Trade {
            step,
            action: self.action,
            symbol: Some(self.symbol.clone()),
            quantity: exact(self.quantity),
            price: exact(self.price),
            fee: self.fee,
            cash_after: self.cash_after,
        }
    }
}

/// The exact decimal of a price or quantity (both display every significant digit).
pub fn exact(value: impl std::fmt::Display) -> Decimal {
    // Display of Price/Quantity is a plain decimal within Decimal's range.
    Decimal::parse(&value.to_string()).unwrap_or_else(|_| Decimal::from_int(0))
}

impl Book {
    pub fn new(cash: Money, fee: Bps) -> Self {
        Self {
            cash,
            holdings: BTreeMap::new(),
            fee,
        }
    }

    /// A book carried over from an earlier day.
    pub fn with_holdings(
        cash: Money,
        holdings: impl IntoIterator<Item = (String, Quantity)>,
        fee: Bps,
    ) -> Self {
        let holdings = holdings.into_iter().filter(|(_, q)| !q.is_zero()).collect();
        Self {
            cash,
            holdings,
            fee,
        }
    }

    pub fn cash(&self) -> Money {
        self.cash
    }

    pub fn currency(&self) -> Currency {
        self.cash.currency()
    }

    /// Held symbols and quantities, by symbol.
    pub fn holdings(&self) -> impl Iterator<Item = (&str, Quantity)> {
        self.holdings.iter().map(|(s, q)| (s.as_str(), *q))
    }

    pub fn quantity(&self, symbol: &str) -> Option<Quantity> {
        self.holdings.get(symbol).copied()
    }

    /// Buys `quantity` at `price` plus the fee; refused if cash does not cover both.
    pub fn buy(
        &mut self,
        symbol: &str,
        quantity: Quantity,
        price: Price,
    ) -> Result<Execution, BookError> {
        let notional = self.notional(price, quantity)?;
        let fee = self.fee.of_money(notional);
        let cost = notional.checked_add(fee)?;
        if cost.raw() > self.cash.raw() {
            return Err(BookError::InsufficientCash(Box::new(Shortfall {
                symbol: symbol.to_string(),
                quantity,
                price,
                notional,
                fee,
                cost,
                cash: self.cash,
            })));
        }
        let new_quantity = match self.holdings.get(symbol) {
            Some(held) => held.checked_add(quantity)?,
            None => quantity,
        };
        self.cash = self.cash.checked_sub(cost)?;
        self.holdings.insert(symbol.to_string(), new_quantity);
        Ok(Execution {
            action: TradeAction::Buy,
            symbol: symbol.to_string(),
            quantity,
            price,
            fee,
            cash_after: self.cash,
        })
    }

    /// Sells `quantity` at `price` less the fee; refused beyond the holding (no short selling).
    pub fn sell(
        &mut self,
        symbol: &str,
        quantity: Quantity,
        price: Price,
    ) -> Result<Execution, BookError> {
        let held = self.holdings.get(symbol).copied();
        let Some(held) = held.filter(|h| *h >= quantity) else {
            return Err(BookError::ShortSale {
                symbol: symbol.to_string(),
                quantity,
                held: held.map_or_else(|| "0".to_string(), |h| h.to_string()),
            });
        };
        let notional = self.notional(price, quantity)?;
        let fee = self.fee.of_money(notional);
        let proceeds = notional.checked_sub(fee)?;
        self.cash = self.cash.checked_add(proceeds)?;
        let left = held.checked_sub(quantity)?;
        if left.is_zero() {
            self.holdings.remove(symbol);
        } else {
            self.holdings.insert(symbol.to_string(), left);
        }
        Ok(Execution {
            action: TradeAction::Sell,
            symbol: symbol.to_string(),
            quantity,
            price,
            fee,
            cash_after: self.cash,
        })
    }

    fn notional(&self, price: Price, quantity: Quantity) -> Result<Money, BookError> {
        Ok(Money::notional(price, quantity, self.currency())?)
    }

    /// Holdings marked at `price_of(symbol)`, and cash plus their value. Exact: the value is
    /// the sum of `quantity × price` of each row plus cash.
    pub fn mark(
        &self,
        mut price_of: impl FnMut(&str) -> Option<Price>,
    ) -> Result<(Vec<Holding>, Money), BookError> {
        let mut total = self.cash;
        let mut rows = Vec::with_capacity(self.holdings.len());
        for (symbol, quantity) in &self.holdings {
            let price = price_of(symbol).ok_or_else(|| BookError::NoPrice(symbol.clone()))?;
            let value = self.notional(price, *quantity)?;
            total = total.checked_add(value)?;
            rows.push(Holding {
                symbol: symbol.clone(),
                quantity: exact(*quantity),
                price: exact(price),
                value,
            });
        }
        Ok((rows, total))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn usd(s: &str) -> Money {
        Money::parse(s, Currency::USD).unwrap()
    }

    fn fee(bps: &str) -> Bps {
        Bps::fee_rate(Decimal::parse(bps).unwrap()).unwrap()
    }

    #[test]
    fn buy_sell_exact_with_fees() {
        let mut book = Book::new(usd("10000"), fee("10"));
        let q = Quantity::from_int(10, 0);
        let p = Price::parse("101.23", 2).unwrap();
        let e = book.buy("AAA", q, p).unwrap();
        // 1012.30 notional, fee 1.0123 → 1.01.
        assert_eq!(e.fee, usd("1.01"));
        assert_eq!(book.cash(), usd("8986.69"));
        let e = book
            .sell(
                "AAA",
                Quantity::from_int(4, 0),
                Price::parse("110", 2).unwrap(),
            )
            .unwrap();
        assert_eq!(e.fee, usd("0.44"));
        assert_eq!(book.cash(), usd("9426.25"));
        assert_eq!(book.quantity("AAA"), Some(Quantity::from_int(6, 0)));
        let (rows, total) = book
            .mark(|_| Some(Price::parse("100.5", 2).unwrap()))
            .unwrap();
        assert_eq!(rows.len(), 1);
        assert_eq!(rows[0].value, usd("603"));
        assert_eq!(total, usd("10029.25"));
    }

    #[test]
    fn refuses_overspending_and_shorting() {
        let mut book = Book::new(usd("100"), fee("0"));
        let err = book
            .buy(
                "AAA",
                Quantity::from_int(2, 0),
                Price::parse("50.01", 2).unwrap(),
            )
            .unwrap_err()
            .to_string();
        assert!(err.starts_with("insufficient cash"), "{err}");
        assert_eq!(book.cash(), usd("100"));
        let err = book
            .sell(
                "AAA",
                Quantity::from_int(1, 0),
                Price::parse("50", 2).unwrap(),
            )
            .unwrap_err()
            .to_string();
        assert!(err.contains("short selling is not allowed"), "{err}");
        book.buy(
            "AAA",
            Quantity::from_int(2, 0),
            Price::parse("50", 2).unwrap(),
        )
        .unwrap();
        assert_eq!(book.cash(), usd("0"));
        book.sell(
            "AAA",
            Quantity::from_int(2, 0),
            Price::parse("50", 2).unwrap(),
        )
        .unwrap();
        assert_eq!(book.holdings().count(), 0, "a sold-out holding disappears");
    }

    #[test]
    fn fee_rate_bounds() {
        assert!(Bps::fee_rate(Decimal::parse("2.55").unwrap()).is_ok());
        assert!(Bps::fee_rate(Decimal::parse("2.555").unwrap()).is_err());
        assert!(Bps::fee_rate(Decimal::parse("-1").unwrap()).is_err());
        assert!(Bps::fee_rate(Decimal::parse("1000.01").unwrap()).is_err());
    }
}
