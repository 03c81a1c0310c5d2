//! Fixed-point decimal parsing and formatting shared by [`crate::Price`], [`crate::Quantity`]
//! and [`crate::Money`].
//!
//! Prices and quantities are `i64` raw values at 10^-9 ([`FIXED_PRECISION`]); money is `i128` at
//! 10^-18, the product of the two scales, so a notional is computed without rounding.

/// Decimal places of the raw representation of prices and quantities.
pub const FIXED_PRECISION: u8 = 9;
/// `10^FIXED_PRECISION`.
pub const FIXED_SCALAR: i64 = 1_000_000_000;
/// Decimal places of the raw representation of money.
pub const MONEY_PRECISION: u8 = 18;

/// Powers of ten that fit an `i64`.
pub const POW10: [i64; 19] = {
    let mut table = [1i64; 19];
    let mut i = 1;
    while i < 19 {
        table[i] = table[i - 1] * 10;
        i += 1;
    }
    table
};

/// Why a decimal string could not be read.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum DecimalError {
    /// The text is empty.
    #[error("empty value")]
    Empty,
    /// The text is not a decimal number.
    #[error("`{0}` is not a decimal number")]
    Invalid(String),
    /// The text has more decimal places than allowed (the limit is the second field).
    #[error("`{0}` has more than {1} decimal places")]
    TooPrecise(String, u8),
    /// The value does not fit the fixed-point type.
    #[error("`{0}` is out of range")]
    OutOfRange(String),
}

/// A parsed decimal: its raw value at `10^-scale` and the number of significant decimal places
/// (trailing zeros not counted), used to check a value against an instrument's precision.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Parsed<T> {
    /// The value at `10^-scale`.
    pub raw: T,
    /// Significant decimal places (trailing zeros not counted).
    pub decimals: u8,
}

/// Parses a plain decimal (`-12.50`, `+3`, `.5`) into an `i128` raw value at `10^-scale`.
/// Exponents, `nan` and `inf` are rejected: market data with them is malformed.
pub fn parse_decimal_i128(text: &[u8], scale: u8) -> Result<Parsed<i128>, DecimalError> {
    let lossy = || String::from_utf8_lossy(text).into_owned();
    let text = trim_ascii(text);
    if text.is_empty() {
        return Err(DecimalError::Empty);
    }
    let (negative, digits) = match text[0] {
        b'-' => (true, &text[1..]),
        b'+' => (false, &text[1..]),
        _ => (false, text),
    };
    let mut int_part: i128 = 0;
    let mut frac_part: i128 = 0;
    let mut frac_digits: u8 = 0;
    let mut significant: u8 = 0;
    let mut seen_dot = false;
    let mut seen_digit = false;
    for &c in digits {
        match c {
            b'0'..=b'9' => {
                seen_digit = true;
                let d = i128::from(c - b'0');
                if seen_dot {
                    if frac_digits == scale {
                        if d != 0 {
                            return Err(DecimalError::TooPrecise(lossy(), scale));
                        }
                        continue;
                    }
                    frac_digits += 1;
                    frac_part = frac_part * 10 + d;
                    if d != 0 {
                        significant = frac_digits;
                    }
                } else {
                    int_part = int_part
                        .checked_mul(10)
                        .and_then(|v| v.checked_add(d))
                        .ok_or_else(|| DecimalError::OutOfRange(lossy()))?;
                }
            }
            b'.' if !seen_dot => seen_dot = true,
            _ => return Err(DecimalError::Invalid(lossy())),
        }
    }
    if !seen_digit {
        return Err(DecimalError::Invalid(lossy()));
    }
    let pow = 10i128.pow(u32::from(scale));
    let frac_scaled = frac_part * 10i128.pow(u32::from(scale - frac_digits));
    let raw = int_part
        .checked_mul(pow)
        .and_then(|v| v.checked_add(frac_scaled))
        .ok_or_else(|| DecimalError::OutOfRange(lossy()))?;
    Ok(Parsed {
        raw: if negative { -raw } else { raw },
        decimals: significant,
    })
}

/// Parses a plain decimal into an `i64` raw value at 10^-9. A `u64` fast path handles the
/// common case (at most 18 digits); anything else goes through the general parser, so errors are
/// the same.
#[inline]
pub fn parse_decimal(text: &[u8]) -> Result<Parsed<i64>, DecimalError> {
    if let Some(parsed) = parse_decimal_fast(text) {
        return Ok(parsed);
    }
    let parsed = parse_decimal_i128(text, FIXED_PRECISION)?;
    let raw = i64::try_from(parsed.raw)
        .map_err(|_| DecimalError::OutOfRange(String::from_utf8_lossy(text).into_owned()))?;
    Ok(Parsed {
        raw,
        decimals: parsed.decimals,
    })
}

#[inline]
fn parse_decimal_fast(text: &[u8]) -> Option<Parsed<i64>> {
    let (negative, digits) = match text.first()? {
        b'-' => (true, &text[1..]),
        _ => (false, text),
    };
    if digits.is_empty() || digits.len() > 19 {
        return None;
    }
    let mut int_part: u64 = 0;
    let mut frac: u64 = 0;
    let mut frac_digits: u32 = 0;
    let mut significant: u8 = 0;
    let mut seen_dot = false;
    let mut seen_digit = false;
    for &c in digits {
        if c.is_ascii_digit() {
            seen_digit = true;
            let d = u64::from(c - b'0');
            if seen_dot {
                if frac_digits == u32::from(FIXED_PRECISION) {
                    return None;
                }
                frac = frac * 10 + d;
                frac_digits += 1;
                if d != 0 {
                    significant = frac_digits as u8;
                }
            } else {
                int_part = int_part * 10 + d;
            }
        } else if c == b'.' && !seen_dot {
            seen_dot = true;
        } else {
            return None;
        }
    }
    if !seen_digit || int_part > 9_000_000_000 {
        return None;
    }
    // A table, not `pow`: a runtime exponent is a loop, on every price of every row.
    let raw = (int_part * 1_000_000_000 + frac * POW10[(9 - frac_digits) as usize] as u64) as i64;
    Some(Parsed {
        raw: if negative { -raw } else { raw },
        decimals: significant,
    })
}

fn trim_ascii(text: &[u8]) -> &[u8] {
    let start = text
        .iter()
        .position(|c| !c.is_ascii_whitespace())
        .unwrap_or(text.len());
    let end = text
        .iter()
        .rposition(|c| !c.is_ascii_whitespace())
        .map_or(start, |i| i + 1);
    &text[start..end]
}

/// Formats a raw value at `10^-scale` with at least `min_decimals` decimal places and as many
/// more as are needed to show it exactly.
pub fn format_raw(raw: i128, scale: u8, min_decimals: u8) -> String {
    let mut out = Vec::with_capacity(48);
    write_raw(&mut out, raw, scale, min_decimals);
    // Invariant: write_raw emits ASCII digits, '-' and '.' only.
    String::from_utf8(out).unwrap_or_default()
}

/// Where formatted bytes go: a `Vec<u8>` or a [`StackBuf`].
pub trait ByteSink {
    /// Appends one byte.
    fn push(&mut self, byte: u8);
    /// Appends bytes.
    fn extend(&mut self, bytes: &[u8]);
    /// Appends `n` `b'0'` bytes and returns them to be overwritten.
    fn zeros(&mut self, n: usize) -> &mut [u8];
}

impl ByteSink for Vec<u8> {
    #[inline]
    fn push(&mut self, byte: u8) {
        Vec::push(self, byte);
    }
    #[inline]
    fn extend(&mut self, bytes: &[u8]) {
        self.extend_from_slice(bytes);
    }
    #[inline]
    fn zeros(&mut self, n: usize) -> &mut [u8] {
        let start = self.len();
        self.resize(start + n, b'0');
        &mut self[start..]
    }
}

/// A fixed 64-byte buffer for formatting one number without allocating (`Display` impls).
/// Longer output is truncated, which no value of these types reaches (at most 41 digits, a
/// sign and a point).
#[derive(Clone, Copy)]
pub struct StackBuf {
    buf: [u8; 64],
    len: usize,
}

impl StackBuf {
    /// An empty buffer.
    pub const fn new() -> Self {
        Self {
            buf: [0; 64],
            len: 0,
        }
    }

    /// The text written so far.
    pub fn as_str(&self) -> &str {
        // Invariant: only ASCII digits, '-' and '.' are written.
        std::str::from_utf8(&self.buf[..self.len]).unwrap_or("")
    }
}

impl Default for StackBuf {
    fn default() -> Self {
        Self::new()
    }
}

impl ByteSink for StackBuf {
    #[inline]
    fn push(&mut self, byte: u8) {
        if self.len < self.buf.len() {
            self.buf[self.len] = byte;
            self.len += 1;
        }
    }
    #[inline]
    fn extend(&mut self, bytes: &[u8]) {
        for &b in bytes {
            self.push(b);
        }
    }
    #[inline]
    fn zeros(&mut self, n: usize) -> &mut [u8] {
        let start = self.len;
        let end = (start + n).min(self.buf.len());
        self.buf[start..end].fill(b'0');
        self.len = end;
        &mut self.buf[start..end]
    }
}

/// Formats a raw value like [`format_raw`] into a [`StackBuf`].
#[inline]
pub fn stack_format(raw: i128, scale: u8, min_decimals: u8) -> StackBuf {
    let mut buf = StackBuf::new();
    write_raw(&mut buf, raw, scale, min_decimals);
    buf
}

/// Appends the same text as [`format_raw`] to `out`, without allocating. One `u128` division
/// at most; everything else runs on `u64` (this is on the per-row path of every artifact).
#[inline]
pub fn write_raw<B: ByteSink>(out: &mut B, raw: i128, scale: u8, min_decimals: u8) {
    let abs = raw.unsigned_abs();
    let (int_part, mut frac) = if scale == 0 {
        (abs, 0u64)
    } else if let (Ok(small), Some(&pow)) = (u64::try_from(abs), POW10.get(usize::from(scale))) {
        // Prices and quantities (and small money): one 64-bit division, not a 128-bit call.
        let pow = pow as u64;
        (u128::from(small / pow), small % pow)
    } else {
        let pow = 10u128.pow(u32::from(scale));
        let q = abs / pow;
        // Invariant: the remainder is below 10^scale ≤ 10^18 < 2^64.
        (q, (abs - q * pow) as u64)
    };
    let mut decimals = scale;
    while decimals >= min_decimals + 8 && frac % 100_000_000 == 0 {
        frac /= 100_000_000;
        decimals -= 8;
    }
    while decimals > min_decimals && frac % 10 == 0 {
        frac /= 10;
        decimals -= 1;
    }
    if raw < 0 {
        out.push(b'-');
    }
    match u64::try_from(int_part) {
        Ok(v) => write_u64(out, v),
        Err(_) => write_u128(out, int_part),
    }
    if decimals > 0 {
        out.push(b'.');
        let digits = out.zeros(usize::from(decimals));
        let mut i = digits.len();
        while frac > 0 && i > 0 {
            i -= 1;
            digits[i] = b'0' + (frac % 10) as u8;
            frac /= 10;
        }
    }
}

/// Appends the decimal digits of `value`.
pub fn write_u64<B: ByteSink>(out: &mut B, mut value: u64) {
    let mut buf = [0u8; 20];
    let mut i = buf.len();
    loop {
        i -= 1;
        buf[i] = b'0' + (value % 10) as u8;
        value /= 10;
        if value == 0 {
            break;
        }
    }
    out.extend(&buf[i..]);
}

/// Appends the decimal digits of `value` (as two `u64` halves of 19 digits when it is large).
pub fn write_u128<B: ByteSink>(out: &mut B, value: u128) {
    const TEN_19: u128 = 10_000_000_000_000_000_000;
    if let Ok(v) = u64::try_from(value) {
        return write_u64(out, v);
    }
    write_u128(out, value / TEN_19);
    // Invariant: the remainder is below 10^19 < 2^64.
    let mut low = (value % TEN_19) as u64;
    let digits = out.zeros(19);
    let mut i = digits.len();
    while low > 0 && i > 0 {
        i -= 1;
        digits[i] = b'0' + (low % 10) as u8;
        low /= 10;
    }
}

/// Rounds a raw value at `10^-scale` to `decimals` places, half away from zero.
pub fn round_raw(raw: i128, scale: u8, decimals: u8) -> i128 {
    if decimals >= scale {
        return raw;
    }
    let step = 10i128.pow(u32::from(scale - decimals));
    let half = step / 2;
    let rem = raw % step;
    let base = raw - rem;
    if rem.abs() >= half {
        base + step * raw.signum()
    } else {
        base
    }
}

/// `a × b ÷ d` without intermediate overflow when `|a mod d| × |b|` fits an `i128`, truncating
/// toward zero. Used to split a cost basis when a position is partly closed.
pub fn mul_div(a: i128, b: i128, d: i128) -> Option<i128> {
    if d == 0 {
        return None;
    }
    let quotient = (a / d).checked_mul(b)?;
    let remainder = (a % d).checked_mul(b)? / d;
    quotient.checked_add(remainder)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_plain_decimals_exactly() {
        let p = parse_decimal(b"104.06").unwrap();
        assert_eq!(p.raw, 104_060_000_000);
        assert_eq!(p.decimals, 2);
        assert_eq!(parse_decimal(b"-0.5").unwrap().raw, -500_000_000);
        assert_eq!(parse_decimal(b"100").unwrap().decimals, 0);
        assert_eq!(parse_decimal(b"1.2300").unwrap().decimals, 2);
        assert_eq!(parse_decimal(b" 7 ").unwrap().raw, 7 * FIXED_SCALAR);
    }

    #[test]
    fn fast_and_general_parsers_agree() {
        for text in [
            "0",
            "104.06",
            "-0.5",
            "9000000000.123456789",
            "1.230",
            ".5",
            "5.",
            "+3",
            "12345678901",
            "9000000000",
            "9000000001",
            "123456789.987654321",
            "0.000000001",
            "1.0000000000",
            "-",
            ".",
            "-.",
            "1..2",
            "12a.5",
            "1.5a",
            "00000000000000000.5",
        ] {
            let general = parse_decimal_i128(text.as_bytes(), FIXED_PRECISION)
                .ok()
                .and_then(|p| {
                    i64::try_from(p.raw).ok().map(|raw| Parsed {
                        raw,
                        decimals: p.decimals,
                    })
                });
            assert_eq!(parse_decimal(text.as_bytes()).ok(), general, "{text}");
        }
    }

    #[test]
    fn fast_and_general_parsers_agree_on_random_text() {
        // Digits, dots, signs and a few other bytes at every length up to 22: every
        // alignment of the eight-digit words and both sides of every range check.
        let alphabet = b"0123456789000999..-+ e";
        let mut state = 0x2545_F491_4F6C_DD1D_u64;
        let mut next = move || {
            state ^= state << 13;
            state ^= state >> 7;
            state ^= state << 17;
            state
        };
        for _ in 0..300_000 {
            let len = (next() % 23) as usize;
            let text: Vec<u8> = (0..len)
                .map(|_| alphabet[(next() % alphabet.len() as u64) as usize])
                .collect();
            let general = parse_decimal_i128(&text, FIXED_PRECISION)
                .ok()
                .and_then(|p| {
                    i64::try_from(p.raw).ok().map(|raw| Parsed {
                        raw,
                        decimals: p.decimals,
                    })
                });
            assert_eq!(
                parse_decimal(&text).ok(),
                general,
                "{}",
                String::from_utf8_lossy(&text)
            );
        }
    }

    #[test]
    fn rejects_malformed_values() {
        assert_eq!(parse_decimal(b""), Err(DecimalError::Empty));
        assert!(matches!(
            parse_decimal(b"1e5"),
            Err(DecimalError::Invalid(_))
        ));
        assert!(matches!(
            parse_decimal(b"nan"),
            Err(DecimalError::Invalid(_))
        ));
        assert!(matches!(
            parse_decimal(b"1.2.3"),
            Err(DecimalError::Invalid(_))
        ));
        assert!(matches!(parse_decimal(b"-"), Err(DecimalError::Invalid(_))));
        assert!(matches!(
            parse_decimal(b"0.0000000001"),
            Err(DecimalError::TooPrecise(..))
        ));
        assert!(matches!(
            parse_decimal(b"99999999999"),
            Err(DecimalError::OutOfRange(_))
        ));
    }

    #[test]
    fn formats_with_minimum_and_exact_decimals() {
        assert_eq!(format_raw(104_060_000_000, 9, 2), "104.06");
        assert_eq!(format_raw(104_000_000_000, 9, 2), "104.00");
        assert_eq!(format_raw(104_000_000_000, 9, 0), "104");
        assert_eq!(format_raw(-1_234_500_000, 9, 2), "-1.2345");
    }

    #[test]
    fn write_raw_writes_exact_decimals() {
        let cases: [(i128, u8, u8, &str); 9] = [
            (104_060_000_000, 9, 2, "104.06"),
            (-1_234_500_000, 9, 2, "-1.2345"),
            (0, 9, 0, "0"),
            (7, 18, 2, "0.000000000000000007"),
            (-5, 0, 0, "-5"),
            (120, 2, 2, "1.20"),
            (i128::MAX, 0, 0, "170141183460469231731687303715884105727"),
            (
                i128::MIN + 1,
                18,
                2,
                "-170141183460469231731.687303715884105727",
            ),
            (10i128.pow(30) + 7, 0, 0, "1000000000000000000000000000007"),
        ];
        for (raw, scale, min, expect) in cases {
            let mut out = Vec::new();
            write_raw(&mut out, raw, scale, min);
            assert_eq!(String::from_utf8(out).unwrap(), expect);
            assert_eq!(stack_format(raw, scale, min).as_str(), expect);
        }
    }

    /// Either side of the 64-bit boundary (one path divides in 64 bits, the other in 128), at
    /// every scale: the digits a decimal rendering of the integer gives.
    #[test]
    fn write_raw_is_the_same_on_either_side_of_64_bits() {
        let edge = i128::from(u64::MAX);
        for raw in [
            edge - 1,
            edge,
            edge + 1,
            -edge,
            -(edge + 1),
            1_000_000_000_000_000_000,
        ] {
            for scale in 0..=18u8 {
                let digits = format!("{:0>width$}", raw.unsigned_abs(), width = 20);
                let (int, frac) = digits.split_at(digits.len() - usize::from(scale));
                let int = int.trim_start_matches('0');
                let int = if int.is_empty() { "0" } else { int };
                let frac = frac.trim_end_matches('0');
                let sign = if raw < 0 { "-" } else { "" };
                let expect = match frac {
                    "" => format!("{sign}{int}"),
                    f => format!("{sign}{int}.{f}"),
                };
                let mut out = Vec::new();
                write_raw(&mut out, raw, scale, 0);
                assert_eq!(String::from_utf8(out).unwrap(), expect, "{raw} at {scale}");
            }
        }
    }

    #[test]
    fn rounds_half_away_from_zero() {
        assert_eq!(round_raw(1_005, 3, 2), 1_010);
        assert_eq!(round_raw(1_004, 3, 2), 1_000);
        assert_eq!(round_raw(-1_005, 3, 2), -1_010);
    }

    #[test]
    fn mul_div_splits_without_overflow() {
        assert_eq!(mul_div(10, 3, 4), Some(7));
        let big = i128::MAX / 4;
        assert_eq!(mul_div(big, 2, 2), Some(big));
        assert_eq!(mul_div(1, 1, 0), None);
    }
}
