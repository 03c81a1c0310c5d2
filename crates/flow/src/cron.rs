//! Checks of `schedule.cron` and `schedule.timezone` text. The scheduler interprets them; this
//! only makes sure a definition cannot be saved with a schedule that could never be read.

/// Checks a five-field cron expression (`minute hour day-of-month month day-of-week`) or one of
/// `@yearly`, `@annually`, `@monthly`, `@weekly`, `@daily`, `@midnight`, `@hourly`.
///
/// A field is `*` or a comma-separated list of `n`, `a-b`, `*/s`, `a-b/s` or `n/s`; months
/// and days of the week may be written as three-letter English names (`JAN`, `MON`);
/// day-of-week 0 and 7 are both Sunday.
pub fn check_cron(text: &str) -> Result<(), String> {
    const MACROS: [&str; 7] = [
        "@yearly",
        "@annually",
        "@monthly",
        "@weekly",
        "@daily",
        "@midnight",
        "@hourly",
    ];
    let text = text.trim();
    if text.starts_with('@') {
        return if MACROS.contains(&text) {
            Ok(())
        } else {
            Err(format!(
                "unknown cron macro `{text}`; expected one of {}",
                MACROS.join(", ")
            ))
        };
    }
    let fields: Vec<&str> = text.split_whitespace().collect();
    if fields.len() != 5 {
        return Err(format!(
            "cron `{text}` has {} field(s); expected 5 (minute hour day-of-month month day-of-week), like `0 6 * * *`",
            fields.len()
        ));
    }
    const MONTHS: [&str; 12] = [
        "JAN", "FEB", "MAR", "APR", "MAY", "JUN", "JUL", "AUG", "SEP", "OCT", "NOV", "DEC",
    ];
    const DAYS: [&str; 7] = ["SUN", "MON", "TUE", "WED", "THU", "FRI", "SAT"];
    let specs: [(&str, u32, u32, &[&str], u32); 5] = [
        ("minute", 0, 59, &[], 0),
        ("hour", 0, 23, &[], 0),
        ("day-of-month", 1, 31, &[], 0),
        ("month", 1, 12, &MONTHS, 1),
        ("day-of-week", 0, 7, &DAYS, 0),
    ];
    for (field, (name, min, max, names, first)) in fields.iter().zip(specs) {
        check_field(field, min, max, names, first)
            .map_err(|e| format!("cron field {name} `{field}`: {e}"))?;
    }
    Ok(())
}

fn check_field(field: &str, min: u32, max: u32, names: &[&str], first: u32) -> Result<(), String> {
    let value = |text: &str| -> Result<u32, String> {
        if let Some(i) = names.iter().position(|n| n.eq_ignore_ascii_case(text)) {
            return Ok(i as u32 + first);
        }
        let n: u32 = text
            .parse()
            .map_err(|_| format!("`{text}` is not a number"))?;
        if n < min || n > max {
            return Err(format!("{n} is out of range {min}-{max}"));
        }
        Ok(n)
    };
    for item in field.split(',') {
        let (range, step) = match item.split_once('/') {
            Some((range, step)) => (range, Some(step)),
            None => (item, None),
        };
        if let Some(step) = step {
            match step.parse::<u32>() {
                Ok(s) if s > 0 => {}
                _ => return Err(format!("step `{step}` must be a positive number")),
            }
        }
        if range == "*" {
            continue;
        }
        match range.split_once('-') {
            Some((a, b)) => {
                let (a, b) = (value(a)?, value(b)?);
                if a > b {
                    return Err(format!("range {a}-{b} is backwards"));
                }
            }
            None => {
                value(range)?;
            }
        }
    }
    Ok(())
}

/// Checks the shape of a time zone: `UTC`, a fixed offset (`+02:00`, `-0530`) or an IANA-style
/// name (`Europe/Paris`, `America/Argentina/Buenos_Aires`). Whether an IANA name exists is left to
/// the scheduler, which has the time zone database.
pub fn check_timezone(text: &str) -> Result<(), String> {
    let offset = |t: &str| {
        let digits: String = t.chars().filter(|c| *c != ':').collect();
        (t.starts_with('+') || t.starts_with('-'))
            && digits.len() == 5
            && digits[1..].chars().all(|c| c.is_ascii_digit())
    };
    let iana = |t: &str| {
        !t.is_empty()
            && t.split('/').all(|part| {
                part.chars().next().is_some_and(|c| c.is_ascii_alphabetic())
                    && part
                        .chars()
                        .all(|c| c.is_ascii_alphanumeric() || "_-+".contains(c))
            })
    };
    if text == "UTC" || offset(text) || iana(text) {
        Ok(())
    } else {
        Err(format!(
            "time zone `{text}` is not `UTC`, an offset like `+02:00` or a name like `Europe/Paris`"
        ))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn accepts_common_expressions() {
        for ok in [
            "0 6 * * *",
            "*/15 9-17 * * MON-FRI",
            "0 0 1,15 jan,jul 0",
            "5 4 * * 7",
            "@daily",
            "0 0-23/2 * * *",
        ] {
            assert_eq!(check_cron(ok), Ok(()), "{ok}");
        }
    }

    #[test]
    fn rejects_with_the_field_named() {
        assert_eq!(
            check_cron("0 25 * * *").unwrap_err(),
            "cron field hour `25`: 25 is out of range 0-23"
        );
        assert!(
            check_cron("0 6 * *")
                .unwrap_err()
                .contains("has 4 field(s)")
        );
        assert!(check_cron("*/0 * * * *").unwrap_err().contains("step `0`"));
        assert!(
            check_cron("0 6 * * FUN")
                .unwrap_err()
                .contains("`FUN` is not a number")
        );
        assert!(
            check_cron("@sometimes")
                .unwrap_err()
                .contains("unknown cron macro")
        );
        assert!(check_cron("0 9-5 * * *").unwrap_err().contains("backwards"));
    }

    #[test]
    fn time_zone_shapes() {
        for ok in [
            "UTC",
            "Europe/Paris",
            "+02:00",
            "-0530",
            "America/Argentina/Buenos_Aires",
        ] {
            assert_eq!(check_timezone(ok), Ok(()), "{ok}");
        }
        for bad in ["", "Europe/", "+2", "utc offset", "12:00"] {
            assert!(check_timezone(bad).is_err(), "{bad}");
        }
    }
}
