//! [`Symbol`]: an instrument's ticker, stored inline so events stay `Copy`.

use std::fmt;

use serde::{Serialize, Serializer};

/// Up to 31 bytes of printable ASCII without spaces (`GOOG`, `BTCUSDT-PERP.BINANCE`).
#[derive(Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Symbol {
    bytes: [u8; 31],
    len: u8,
}

impl Symbol {
    /// The longest symbol, in bytes.
    pub const MAX_LEN: usize = 31;

    /// A symbol of 1 to [`Symbol::MAX_LEN`] printable ASCII characters without spaces.
    pub fn new(text: &str) -> Result<Self, String> {
        if text.is_empty() || text.len() > Self::MAX_LEN {
            return Err(format!(
                "invalid symbol `{text}`: expected 1 to {} characters",
                Self::MAX_LEN
            ));
        }
        if !text.bytes().all(|c| c.is_ascii_graphic()) {
            return Err(format!(
                "invalid symbol `{text}`: only printable ASCII without spaces is allowed"
            ));
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
