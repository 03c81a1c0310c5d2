//! Durations written as text in definitions (`30s`, `15m`, `1h`, `2d`, `1h30m`, `250ms`).

/// Parses a duration into milliseconds: one or more `<integer><unit>` parts with units `ms`, `s`,
/// `m`, `h`, `d`, largest first or not, summed. Zero and overflow are errors.
pub fn parse_duration_ms(text: &str) -> Result<u64, String> {
    let invalid = || {
        format!(
            "invalid duration `{text}`; expected a number and a unit (ms, s, m, h, d), like `30s`, `15m`, `1h` or `2d`"
        )
    };
    let mut total: u64 = 0;
    let mut rest = text;
    if rest.is_empty() {
        return Err(invalid());
    }
    while !rest.is_empty() {
        let digits = rest
            .find(|c: char| !c.is_ascii_digit())
            .unwrap_or(rest.len());
        if digits == 0 {
            return Err(invalid());
        }
        let amount: u64 = rest[..digits].parse().map_err(|_| invalid())?;
        rest = &rest[digits..];
        let unit_len = rest
            .find(|c: char| !c.is_ascii_alphabetic())
            .unwrap_or(rest.len());
        let unit_ms: u64 = match &rest[..unit_len] {
            "ms" => 1,
            "s" => 1_000,
            "m" => 60_000,
            "h" => 3_600_000,
            "d" => 86_400_000,
            _ => return Err(invalid()),
        };
        rest = &rest[unit_len..];
        total = amount
            .checked_mul(unit_ms)
            .and_then(|ms| total.checked_add(ms))
            .ok_or_else(|| format!("duration `{text}` is too long"))?;
    }
    if total == 0 {
        return Err(format!("duration `{text}` must be longer than zero"));
    }
    Ok(total)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_units_and_sums() {
        assert_eq!(parse_duration_ms("30s"), Ok(30_000));
        assert_eq!(parse_duration_ms("15m"), Ok(900_000));
        assert_eq!(parse_duration_ms("1h"), Ok(3_600_000));
        assert_eq!(parse_duration_ms("2d"), Ok(172_800_000));
        assert_eq!(parse_duration_ms("250ms"), Ok(250));
        assert_eq!(parse_duration_ms("1h30m"), Ok(5_400_000));
    }

    #[test]
    fn rejects_bad_text() {
        for bad in ["", "1", "h", "1 h", "1x", "-1h", "1.5h", "1hour"] {
            let e = parse_duration_ms(bad).unwrap_err();
            assert!(e.starts_with("invalid duration"), "{bad}: {e}");
        }
        assert!(
            parse_duration_ms("0s")
                .unwrap_err()
                .contains("longer than zero")
        );
        assert!(
            parse_duration_ms("99999999999999999d")
                .unwrap_err()
                .contains("too long")
        );
    }
}
