//! [`Symbol`]: an instrument's ticker, stored inline so events stay `Copy`.

use std::fmt;

use serde::{Serialize, Serializer};

/// Up to 31 bytes of printable ASCII without spaces, commas or double quotes (`GOOG`,
/// `BTCUSDT-PERP.BINANCE`, `BRK.B`, `EUR/USD`, `^GSPC`).
#[derive(Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Symbol {
    bytes: [u8; 31],
    len: u8,
}

/// Why a text is not a symbol.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum SymbolError {
    /// Empty or longer than [`Symbol::MAX_LEN`] bytes.
    #[error(
        "invalid symbol `{text}`: expected 1 to {} characters",
        Symbol::MAX_LEN
    )]
    Length {
        /// The text given.
        text: String,
    },
    /// A space, a comma, a double quote, a control character or a non-ASCII character.
    #[error(
        "invalid symbol `{text}`: only printable ASCII without spaces, commas or double quotes is allowed (a symbol is a field of the run's CSV files)"
    )]
    Characters {
        /// The text given.
        text: String,
    },
}

impl Symbol {
    /// The longest symbol, in bytes.
    pub const MAX_LEN: usize = 31;

    /// A symbol of 1 to [`Symbol::MAX_LEN`] printable ASCII characters without spaces, commas
    /// or double quotes (it is written unquoted as a field of CSV files).
    pub fn new(text: &str) -> Result<Self, SymbolError> {
        if text.is_empty() || text.len() > Self::MAX_LEN {
            return Err(SymbolError::Length {
                text: text.to_string(),
            });
        }
        if !text
            .bytes()
            .all(|c| c.is_ascii_graphic() && c != b',' && c != b'"')
        {
            return Err(SymbolError::Characters {
                text: text.to_string(),
            });
        }
        let mut bytes = [0u8; 31];
        bytes[..text.len()].copy_from_slice(text.as_bytes());
        Ok(Self {
            bytes,
            len: text.len() as u8,
        })
    }

    /// The symbol as text.
    pub fn as_str(&self) -> &str {
        // Invariant: constructed only from ASCII bytes.
        std::str::from_utf8(&self.bytes[..usize::from(self.len)]).unwrap_or("?")
    }
}

impl fmt::Display for Symbol {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl fmt::Debug for Symbol {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Symbol({})", self.as_str())
    }
}

impl Serialize for Symbol {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.serialize_str(self.as_str())
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)] // tests fail loudly on an unexpected error
mod tests {
    use super::*;

    #[test]
    fn tickers_as_venues_write_them_are_symbols() {
        for text in [
            "GOOG",
            "BTCUSDT-PERP.BINANCE",
            "BRK.B",
            "EUR/USD",
            "^GSPC",
            "ES=F",
        ] {
            assert_eq!(
                Symbol::new(text).map(|s| s.to_string()),
                Ok(text.to_string())
            );
        }
    }

    #[test]
    fn what_would_break_a_csv_row_is_refused_by_name() {
        for text in ["BRK,B", "A\"B", "A B", "Ä", "A\tB"] {
            let error = Symbol::new(text).unwrap_err();
            assert_eq!(
                error,
                SymbolError::Characters {
                    text: text.to_string()
                }
            );
            assert!(error.to_string().contains(&format!("`{text}`")), "{error}");
        }
        assert!(matches!(Symbol::new(""), Err(SymbolError::Length { .. })));
        assert!(matches!(
            Symbol::new(&"A".repeat(32)),
            Err(SymbolError::Length { .. })
        ));
    }
}
