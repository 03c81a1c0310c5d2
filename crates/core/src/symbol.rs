//! [`Symbol`]: an instrument's ticker, stored inline so events stay `Copy`.

use std::fmt;

use serde::{Serialize, Serializer};

/// Up to 31 bytes of printable ASCII without spaces (`GOOG`, `BTCUSDT-PERP.BINANCE`).
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
    /// A space, a control character or a non-ASCII character.
    #[error("invalid symbol `{text}`: only printable ASCII without spaces is allowed")]
    Characters {
        /// The text given.
        text: String,
    },
}

impl Symbol {
    /// The longest symbol, in bytes.
    pub const MAX_LEN: usize = 31;

    /// A symbol of 1 to [`Symbol::MAX_LEN`] printable ASCII characters without spaces.
    pub fn new(text: &str) -> Result<Self, SymbolError> {
        if text.is_empty() || text.len() > Self::MAX_LEN {
            return Err(SymbolError::Length {
                text: text.to_string(),
            });
        }
        if !text.bytes().all(|c| c.is_ascii_graphic()) {
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
