//! [`Num`]: an exact decimal at 10^-18 as the database sees it — TEXT in SQLite,
//! NUMERIC(38,18) in PostgreSQL — so the same SQL binds and reads money on both back ends.

use sqlx::encode::IsNull;
use sqlx::error::BoxDynError;
use sqlx::postgres::types::Oid;
use sqlx::postgres::{PgArgumentBuffer, PgTypeInfo, PgValueFormat, PgValueRef};
use sqlx::sqlite::{SqliteArgumentsBuffer, SqliteTypeInfo, SqliteValueRef};
use sqlx::{Decode, Encode, Postgres, Sqlite, Type};
use tradeloom_core::fixed::{self, MONEY_PRECISION};
use tradeloom_core::{Currency, Decimal, Money};

const SCALE: i128 = 1_000_000_000_000_000_000;
const NUMERIC_OID: Oid = Oid(1700);
const SIGN_POS: u16 = 0x0000;
const SIGN_NEG: u16 = 0x4000;

/// Why a value read from the database is not an exact decimal at 10^-18.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub(crate) enum NumError {
    /// The text is not a decimal (SQLite's TEXT, PostgreSQL's text format).
    #[error("decimal column: {0}")]
    Unparsable(String),
    /// The value does not fit a [`Decimal`].
    #[error("{0}")]
    NotADecimal(String),
    /// A binary NUMERIC shorter than its header says.
    #[error("truncated NUMERIC value")]
    Truncated,
    /// A binary NUMERIC with the sign of NaN or an infinity.
    #[error("NUMERIC sign {0:#06x} (NaN or infinity) is not a decimal")]
    NotFinite(u16),
    /// A binary NUMERIC beyond the range of `i128` at 10^-18.
    #[error("NUMERIC value out of range for 10^-18 decimals")]
    OutOfRange,
    /// A binary NUMERIC with more than 18 decimal places.
    #[error("NUMERIC value has more than 18 decimal places")]
    TooPrecise,
}

/// `raw × 10^-18`, the scale of [`Money`] and [`Decimal`].
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct Num(pub i128);

impl Num {
    pub(crate) fn from_money(money: Money) -> Self {
        Num(money.raw())
    }

    pub(crate) fn from_decimal(decimal: Decimal) -> Self {
        // `to_money` keeps the raw value at 10^-18; the currency is irrelevant here.
        Num(decimal.to_money(Currency::USD).raw())
    }

    pub(crate) fn to_money(self, currency: Currency) -> Money {
        Money::from_raw(self.0, currency)
    }

    pub(crate) fn to_decimal(self) -> Result<Decimal, NumError> {
        Decimal::parse(&fixed::format_raw(self.0, MONEY_PRECISION, 0))
            .map_err(|e| NumError::NotADecimal(e.to_string()))
    }

    /// Parses a decimal as the database prints it (`12.5`, `12.500000000000000000`).
    pub(crate) fn parse_text(text: &str) -> Result<Self, NumError> {
        fixed::parse_decimal_i128(text.as_bytes(), MONEY_PRECISION)
            .map(|p| Num(p.raw))
            .map_err(|e| NumError::Unparsable(e.to_string()))
    }

    pub(crate) fn text(self) -> String {
        fixed::format_raw(self.0, MONEY_PRECISION, 0)
    }
}

// ---- SQLite: TEXT ----------------------------------------------------------

impl Type<Sqlite> for Num {
    fn type_info() -> SqliteTypeInfo {
        <String as Type<Sqlite>>::type_info()
    }

    fn compatible(ty: &SqliteTypeInfo) -> bool {
        <String as Type<Sqlite>>::compatible(ty)
    }
}

impl Encode<'_, Sqlite> for Num {
    fn encode_by_ref(&self, buf: &mut SqliteArgumentsBuffer) -> Result<IsNull, BoxDynError> {
        <String as Encode<Sqlite>>::encode(self.text(), buf)
    }
}

impl<'r> Decode<'r, Sqlite> for Num {
    fn decode(value: SqliteValueRef<'r>) -> Result<Self, BoxDynError> {
        let text = <&str as Decode<Sqlite>>::decode(value)?;
        Ok(Num::parse_text(text)?)
    }
}

// ---- PostgreSQL: NUMERIC (binary: base-10000 digits) --------------------------

impl Type<Postgres> for Num {
    fn type_info() -> PgTypeInfo {
        PgTypeInfo::with_oid(NUMERIC_OID)
    }

    fn compatible(ty: &PgTypeInfo) -> bool {
        ty.oid() == Some(NUMERIC_OID)
    }
}

impl Encode<'_, Postgres> for Num {
    fn encode_by_ref(&self, buf: &mut PgArgumentBuffer) -> Result<IsNull, BoxDynError> {
        buf.extend_from_slice(&encode_numeric(self.0));
        Ok(IsNull::No)
    }
}

impl<'r> Decode<'r, Postgres> for Num {
    fn decode(value: PgValueRef<'r>) -> Result<Self, BoxDynError> {
        match value.format() {
            PgValueFormat::Text => Ok(Num::parse_text(value.as_str()?)?),
            PgValueFormat::Binary => Ok(Num(decode_numeric(value.as_bytes()?)?)),
        }
    }
}

/// PostgreSQL's binary NUMERIC: ndigits, weight, sign, dscale (2 bytes each), then base-10000
/// digits, most significant first; digit `i` is worth `10000^(weight - i)`.
fn encode_numeric(raw: i128) -> Vec<u8> {
    let abs = raw.unsigned_abs();
    let int = abs / SCALE as u128;
    // 18 fractional decimal digits padded to 20 fill five base-10000 digits.
    let mut frac = (abs % SCALE as u128) * 100;
    let mut frac_digits = [0i16; 5];
    for d in frac_digits.iter_mut().rev() {
        *d = (frac % 10_000) as i16;
        frac /= 10_000;
    }
    let mut digits: Vec<i16> = Vec::with_capacity(16);
    let mut n = int;
    while n > 0 {
        digits.push((n % 10_000) as i16);
        n /= 10_000;
    }
    digits.reverse();
    let mut weight = digits.len() as i16 - 1;
    digits.extend_from_slice(&frac_digits);
    let leading = digits.iter().take_while(|&&d| d == 0).count();
    digits.drain(..leading);
    weight -= leading as i16;
    while digits.last() == Some(&0) {
        digits.pop();
    }
    let sign = if raw < 0 && !digits.is_empty() {
        SIGN_NEG
    } else {
        SIGN_POS
    };
    if digits.is_empty() {
        weight = 0;
    }
    let mut out = Vec::with_capacity(8 + 2 * digits.len());
    out.extend_from_slice(&(digits.len() as i16).to_be_bytes());
    out.extend_from_slice(&weight.to_be_bytes());
    out.extend_from_slice(&sign.to_be_bytes());
    out.extend_from_slice(&i16::from(MONEY_PRECISION).to_be_bytes());
    for d in digits {
        out.extend_from_slice(&d.to_be_bytes());
    }
    out
}

fn decode_numeric(buf: &[u8]) -> Result<i128, NumError> {
    let word = |i: usize| -> Result<[u8; 2], NumError> {
        buf.get(i..i + 2)
            .and_then(|s| s.try_into().ok())
            .ok_or(NumError::Truncated)
    };
    let ndigits = i16::from_be_bytes(word(0)?);
    let weight = i32::from(i16::from_be_bytes(word(2)?));
    let sign = u16::from_be_bytes(word(4)?);
    if sign != SIGN_POS && sign != SIGN_NEG {
        return Err(NumError::NotFinite(sign));
    }
    let mut raw: i128 = 0;
    for i in 0..i32::from(ndigits) {
        let digit = i128::from(i16::from_be_bytes(word(8 + 2 * i as usize)?));
        // Decimal exponent of this digit relative to 10^-18.
        let exp = 18 + 4 * (weight - i);
        let term = if exp >= 0 {
            10i128
                .checked_pow(exp as u32)
                .and_then(|p| p.checked_mul(digit))
                .ok_or(NumError::OutOfRange)?
        } else {
            let div = 10i128.pow((-exp) as u32);
            if digit % div != 0 {
                return Err(NumError::TooPrecise);
            }
            digit / div
        };
        raw = raw.checked_add(term).ok_or(NumError::OutOfRange)?;
    }
    Ok(if sign == SIGN_NEG { -raw } else { raw })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn round_trip(text: &str) {
        let raw = fixed::parse_decimal_i128(text.as_bytes(), MONEY_PRECISION)
            .expect("valid test decimal")
            .raw;
        assert_eq!(
            decode_numeric(&encode_numeric(raw)).ok(),
            Some(raw),
            "{text}"
        );
    }

    #[test]
    fn numeric_binary_round_trips() {
        for text in [
            "0",
            "0.1",
            "-0.1",
            "1",
            "10000",
            "12345678901.123456789",
            "0.000000000000000001",
            "-99999999999999999999.999999999999999999",
            "100000000",
            "0.00010000",
        ] {
            round_trip(text);
        }
    }

    #[test]
    fn numeric_binary_layout_matches_postgres() {
        // 12.5 = digits [12, 5000], weight 0, positive, dscale 18.
        let bytes = encode_numeric(125 * SCALE / 10);
        assert_eq!(
            bytes,
            vec![0, 2, 0, 0, 0, 0, 0, 18, 0, 12, 0x13, 0x88],
            "ndigits, weight, sign, dscale, digits"
        );
        // Zero has no digits.
        assert_eq!(encode_numeric(0), vec![0, 0, 0, 0, 0, 0, 0, 18]);
    }
}
