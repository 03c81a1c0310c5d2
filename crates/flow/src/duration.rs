//! Durations written as text in definitions (`30s`, `15m`, `1h`, `2d`, `1h30m`, `250ms`).

use tradeloom_core::duration::{DAYS, DurationSyntax, HOURS, MILLISECONDS, MINUTES, SECONDS};

/// Definitions accept days as well.
const SYNTAX: DurationSyntax = DurationSyntax {
    units: &[MILLISECONDS, SECONDS, MINUTES, HOURS, DAYS],
    examples: &["30s", "15m", "1h", "2d"],
};

/// Parses a duration into milliseconds: one or more `<integer><unit>` parts with units `ms`, `s`,
/// `m`, `h`, `d`, largest first or not, summed. Zero and overflow are errors.
pub fn parse_duration_ms(text: &str) -> Result<u64, String> {
    SYNTAX.parse_ms(text).map_err(|e| e.to_string())
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
