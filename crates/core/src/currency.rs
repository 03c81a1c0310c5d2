//! [`Currency`]: an ISO-4217-like code with the precision its amounts are settled in.

use std::fmt;

use serde::{Serialize, Serializer};

/// A currency code (2–8 upper-case letters or digits) and its settlement precision.
#[derive(Clone, Copy, PartialEq, Eq, Hash)]
pub struct Currency {
    code: [u8; 8],
    len: u8,
    precision: u8,
}

/// Why a currency cannot be made.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum CurrencyError {
    /// The code is not 2 to 8 upper-case letters or digits.
    #[error(
        "invalid currency code `{code}`: expected 2 to 8 upper-case letters or digits, e.g. `USD`"
    )]
    Code {
        /// The code given.
        code: String,
    },
    /// More than 18 decimal places.
    #[error("currency precision {precision} is above the maximum 18")]
    Precision {
        /// The precision given.
        precision: u8,
    },
}

impl Currency {
    /// US dollar, 2 decimals.
    pub const USD: Currency = Currency::known(*b"USD", 2);

    const fn known(code: [u8; 3], precision: u8) -> Self {
        Self {
            code: [code[0], code[1], code[2], 0, 0, 0, 0, 0],
            len: 3,
            precision,
        }
    }

    /// A currency by code with its usual precision: 0 for JPY and KRW, 8 for BTC, ETH, USDT and
    /// USDC, 2 otherwise.
    pub fn from_code(code: &str) -> Result<Self, CurrencyError> {
        let precision = match code {
            "JPY" | "KRW" => 0,
            "BTC" | "ETH" | "USDT" | "USDC" => 8,
            _ => 2,
        };
        Self::new(code, precision)
    }

    /// A currency with an explicit precision.
    pub fn new(code: &str, precision: u8) -> Result<Self, CurrencyError> {
        let valid = (2..=8).contains(&code.len())
            && code
                .bytes()
                .all(|c| c.is_ascii_uppercase() || c.is_ascii_digit());
        if !valid {
            return Err(CurrencyError::Code {
                code: code.to_string(),
            });
        }
        if precision > 18 {
            return Err(CurrencyError::Precision { precision });
        }
        let mut buf = [0u8; 8];
        buf[..code.len()].copy_from_slice(code.as_bytes());
        Ok(Self {
            code: buf,
            len: code.len() as u8,
            precision,
        })
    }

    /// The ISO-style code (`USD`, `BTC`).
    pub fn code(&self) -> &str {
        // Invariant: constructed only from ASCII bytes.
        std::str::from_utf8(&self.code[..usize::from(self.len)]).unwrap_or("???")
    }

    /// Decimal places of an amount in this currency (2 for USD).
    pub const fn precision(&self) -> u8 {
        self.precision
    }
}

impl fmt::Display for Currency {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.code())
    }
}

impl fmt::Debug for Currency {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}({})", self.code(), self.precision)
    }
}

impl Serialize for Currency {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.serialize_str(self.code())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn knows_common_precisions() {
        assert_eq!(Currency::from_code("USD").unwrap(), Currency::USD);
        assert_eq!(Currency::from_code("JPY").unwrap().precision(), 0);
        assert_eq!(Currency::from_code("USDT").unwrap().precision(), 8);
        assert!(Currency::from_code("usd").is_err());
        assert!(Currency::from_code("TOOLONGCODE").is_err());
    }
}
