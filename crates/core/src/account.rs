//! [`Account`]: cash and fees of one run, in one currency.

use serde::Serialize;

use crate::currency::Currency;
use crate::error::ArithmeticError;
use crate::money::Money;
use crate::order::OrderSide;

/// How the venue treats the account.
#[derive(Clone, Copy, PartialEq, Eq, Debug, Serialize, Default)]
#[serde(rename_all = "snake_case")]
pub enum AccountKind {
    /// Shorting allowed; no buying-power check (cash may go negative, as with leverage).
    #[default]
    Margin,
    /// No shorting; a buy needs enough cash for its notional and fee.
    Cash,
}

/// Cash and cumulative fees. Cash moves by `−signed notional − fee` on every fill.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Account {
    /// Cash or margin: whether the account may borrow and go short.
    pub kind: AccountKind,
    /// The cash the run started with.
    pub initial: Money,
    cash: Money,
    fees: Money,
}

impl Account {
    /// An account holding `initial` cash and no fees yet.
    pub fn new(kind: AccountKind, initial: Money) -> Self {
        Self {
            kind,
            initial,
            cash: initial,
            fees: Money::zero(initial.currency()),
        }
    }

    /// The currency of its cash.
    pub fn currency(&self) -> Currency {
        self.initial.currency()
    }

    /// Cash now, after every fill applied.
    pub fn cash(&self) -> Money {
        self.cash
    }

    /// Fees paid so far.
    pub fn fees(&self) -> Money {
        self.fees
    }

    /// Books a fill: a buy pays its notional, a sell receives it; the fee is always paid.
    pub fn apply_fill(
        &mut self,
        side: OrderSide,
        notional: Money,
        fee: Money,
    ) -> Result<(), ArithmeticError> {
        self.cash = match side {
            OrderSide::Buy => self.cash.checked_sub(notional)?,
            OrderSide::Sell => self.cash.checked_add(notional)?,
        }
        .checked_sub(fee)?;
        self.fees = self.fees.checked_add(fee)?;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fills_move_cash_and_fees() {
        let usd = Currency::USD;
        let mut a = Account::new(AccountKind::Margin, Money::parse("1000", usd).unwrap());
        a.apply_fill(
            OrderSide::Buy,
            Money::parse("100", usd).unwrap(),
            Money::parse("0.10", usd).unwrap(),
        )
        .unwrap();
        a.apply_fill(
            OrderSide::Sell,
            Money::parse("120", usd).unwrap(),
            Money::parse("0.12", usd).unwrap(),
        )
        .unwrap();
        assert_eq!(a.cash().to_string(), "1019.78");
        assert_eq!(a.fees().to_string(), "0.22");
    }
}
