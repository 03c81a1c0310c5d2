//! Durations written as text (`30s`, `15m`, `1h30m`, `250ms`): one or more `<integer><unit>`
//! parts, summed. Which units a field accepts is data ([`DurationSyntax`]): a workflow's
//! `expires_after` takes days, a health interval does not.

/// One unit of a [`DurationSyntax`]: its suffix and length.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct DurationUnit {
    /// The suffix after the number (`ms`, `s`).
    pub suffix: &'static str,
    /// Milliseconds in one unit.
    pub millis: u64,
}

/// Milliseconds.
pub const MILLISECONDS: DurationUnit = DurationUnit {
    suffix: "ms",
    millis: 1,
};
/// Seconds.
pub const SECONDS: DurationUnit = DurationUnit {
    suffix: "s",
    millis: 1_000,
};
/// Minutes.
pub const MINUTES: DurationUnit = DurationUnit {
    suffix: "m",
    millis: 60_000,
};
/// Hours.
pub const HOURS: DurationUnit = DurationUnit {
    suffix: "h",
    millis: 3_600_000,
};
/// Days of 24 hours.
pub const DAYS: DurationUnit = DurationUnit {
    suffix: "d",
    millis: 86_400_000,
};

/// The units a field accepts and the examples its error message shows.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct DurationSyntax {
    /// Accepted units, listed in this order in the error message.
    pub units: &'static [DurationUnit],
    /// Valid examples for the error message (`30s`, `15m`).
    pub examples: &'static [&'static str],
}

/// Why a text is not a duration; the messages quote the text.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum DurationError {
    /// Not `<integer><unit>` parts with known units.
    #[error("invalid duration `{text}`; expected a number and a unit ({units}), like {examples}")]
    Invalid {
        /// The text as given.
        text: String,
        /// The accepted units, comma-separated.
        units: String,
        /// The examples, quoted (`` `30s`, `2m` or `500ms` ``).
        examples: String,
    },
    /// Longer than `u64` milliseconds.
    #[error("duration `{0}` is too long")]
    TooLong(String),
    /// Zero in total.
    #[error("duration `{0}` must be longer than zero")]
    Zero(String),
}

impl DurationSyntax {
    /// Parses `text` (no surrounding whitespace) into milliseconds: one or more
    /// `<integer><unit>` parts in any order, summed. Zero and overflow are errors.
    pub fn parse_ms(&self, text: &str) -> Result<u64, DurationError> {
        let invalid = || DurationError::Invalid {
            text: text.to_string(),
            units: self
                .units
                .iter()
                .map(|u| u.suffix)
                .collect::<Vec<_>>()
                .join(", "),
            examples: self.quoted_examples(),
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
            let suffix = &rest[..unit_len];
            let Some(unit) = self.units.iter().find(|u| u.suffix == suffix) else {
                return Err(invalid());
            };
            rest = &rest[unit_len..];
            total = amount
                .checked_mul(unit.millis)
                .and_then(|ms| total.checked_add(ms))
                .ok_or_else(|| DurationError::TooLong(text.to_string()))?;
        }
        if total == 0 {
            return Err(DurationError::Zero(text.to_string()));
        }
        Ok(total)
    }

    /// `` `a`, `b` or `c` ``.
    fn quoted_examples(&self) -> String {
        let quoted: Vec<String> = self.examples.iter().map(|e| format!("`{e}`")).collect();
        match quoted.split_last() {
            None => String::new(),
            Some((last, [])) => last.clone(),
            Some((last, rest)) => format!("{} or {last}", rest.join(", ")),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const WITH_DAYS: DurationSyntax = DurationSyntax {
        units: &[MILLISECONDS, SECONDS, MINUTES, HOURS, DAYS],
        examples: &["30s", "15m", "1h", "2d"],
    };
    const NO_DAYS: DurationSyntax = DurationSyntax {
        units: &[MILLISECONDS, SECONDS, MINUTES, HOURS],
        examples: &["30s", "2m", "500ms"],
    };

    #[test]
    fn parses_and_sums_the_allowed_units() {
        assert_eq!(WITH_DAYS.parse_ms("1h30m"), Ok(5_400_000));
        assert_eq!(WITH_DAYS.parse_ms("2d"), Ok(172_800_000));
        assert_eq!(NO_DAYS.parse_ms("250ms"), Ok(250));
        assert_eq!(
            NO_DAYS.parse_ms("2d").unwrap_err().to_string(),
            "invalid duration `2d`; expected a number and a unit (ms, s, m, h), like `30s`, `2m` or `500ms`"
        );
        assert_eq!(
            WITH_DAYS.parse_ms("1x").unwrap_err().to_string(),
            "invalid duration `1x`; expected a number and a unit (ms, s, m, h, d), like `30s`, `15m`, `1h` or `2d`"
        );
        assert_eq!(
            WITH_DAYS.parse_ms("0s"),
            Err(DurationError::Zero("0s".into()))
        );
        assert_eq!(
            WITH_DAYS.parse_ms("99999999999999999d"),
            Err(DurationError::TooLong("99999999999999999d".into()))
        );
        for bad in ["", " 1s", "1 h", "-1h", "1.5h", "h"] {
            assert!(
                matches!(WITH_DAYS.parse_ms(bad), Err(DurationError::Invalid { .. })),
                "{bad}"
            );
        }
    }
}
