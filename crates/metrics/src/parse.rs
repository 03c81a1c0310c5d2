//! A strict reader of the text exposition format 0.0.4, written from the format's grammar (not
//! from [`crate::Registry`]) so tests can check what tradeloom serves. It refuses what Prometheus
//! would refuse and what the format leaves to a scraper's mercy: unknown escapes, duplicate
//! series, `# TYPE` after a family's samples, interleaved families, histograms without `+Inf`,
//! with decreasing buckets or whose `+Inf` bucket differs from `_count`.
//!
//! No maintained crate could do this job: prometheus-parse (Apache-2.0) splits label sets with a
//! regex that stops at the first `}` and at every `,` in a value, and skips lines it cannot read
//! without saying so; openmetrics-parser is LGPL-3.0.

use std::collections::BTreeMap;

/// One sample line.
#[derive(Clone, Debug, PartialEq)]
pub struct ParsedSample {
    /// The series name as written (`x_bucket`, `x_sum`, …).
    pub name: String,
    pub labels: BTreeMap<String, String>,
    pub value: f64,
}

/// A family: its `# TYPE` and `# HELP` (unescaped) and its samples in order.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct ParsedFamily {
    pub kind: String,
    pub help: Option<String>,
    pub samples: Vec<ParsedSample>,
}

/// A parsed exposition, families by name.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Exposition {
    pub families: BTreeMap<String, ParsedFamily>,
}

impl Exposition {
    /// The value of the one sample named `name` whose labels include `labels`.
    pub fn value(&self, name: &str, labels: &[(&str, &str)]) -> Option<f64> {
        self.families
            .values()
            .flat_map(|f| &f.samples)
            .find(|s| {
                s.name == name
                    && labels
                        .iter()
                        .all(|(k, v)| s.labels.get(*k).map(String::as_str) == Some(*v))
            })
            .map(|s| s.value)
    }
}

/// Why an exposition was refused.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum ParseError {
    /// The last line does not end with a line feed.
    #[error("line {line}: the last line does not end with a line feed")]
    Unterminated {
        /// The 1-based line.
        line: usize,
    },
    /// A line is malformed or breaks the format's rules.
    #[error("line {line}: {problem}: `{text}`")]
    Line {
        /// The 1-based line.
        line: usize,
        /// What is wrong with it.
        problem: String,
        /// The line as written.
        text: String,
    },
    /// A histogram's buckets, `_count` or `_sum` do not agree.
    #[error("{0}")]
    Histogram(String),
}

/// Parses `text`; the error names the 1-based line and what is wrong with it.
pub fn parse(text: &str) -> Result<Exposition, ParseError> {
    let mut out = Exposition::default();
    let mut current: Option<String> = None;
    let mut closed: Vec<String> = Vec::new();
    let mut seen = std::collections::BTreeSet::new();
    for (i, line) in text.split_inclusive('\n').enumerate() {
        let n = i + 1;
        let line = line
            .strip_suffix('\n')
            .ok_or(ParseError::Unterminated { line: n })?;
        let fail = |problem: String| ParseError::Line {
            line: n,
            problem,
            text: line.to_string(),
        };
        if line.is_empty() {
            continue;
        }
        if let Some(rest) = line.strip_prefix('#') {
            let rest = rest.trim_start_matches(' ');
            let (keyword, rest) = rest.split_once(' ').unwrap_or((rest, ""));
            if keyword != "HELP" && keyword != "TYPE" {
                continue; // a plain comment
            }
            let (name, arg) = rest.split_once(' ').unwrap_or((rest, ""));
            if !crate::valid_metric_name(name) {
                return Err(fail(format!("invalid metric name `{name}`")));
            }
            let family = enter(&mut out, &mut current, &mut closed, name).map_err(&fail)?;
            if keyword == "HELP" {
                if family.help.is_some() {
                    return Err(fail("second HELP".into()));
                }
                family.help = Some(unescape(arg, false).map_err(&fail)?);
            } else {
                if !family.kind.is_empty() || !family.samples.is_empty() {
                    return Err(fail(
                        "TYPE after the family's samples or a second TYPE".into(),
                    ));
                }
                if !["counter", "gauge", "histogram", "summary", "untyped"].contains(&arg) {
                    return Err(fail(format!("unknown type `{arg}`")));
                }
                family.kind = arg.to_string();
            }
            continue;
        }
        let sample = sample(line).map_err(&fail)?;
        let key = (sample.name.clone(), sample.labels.clone());
        if !seen.insert(key) {
            return Err(fail("duplicate series".into()));
        }
        let family_name = family_of(&out, &sample.name);
        let family = enter(&mut out, &mut current, &mut closed, &family_name).map_err(&fail)?;
        if family.kind == "histogram"
            && !sample.name.ends_with("_bucket")
            && !sample.name.ends_with("_sum")
            && !sample.name.ends_with("_count")
        {
            return Err(fail(
                "a histogram sample that is not _bucket, _sum or _count".into(),
            ));
        }
        family.samples.push(sample);
    }
    for (name, family) in &out.families {
        if family.kind == "histogram" {
            check_histogram(name, family).map_err(ParseError::Histogram)?;
        }
    }
    Ok(out)
}

/// The family a series belongs to: a histogram's `_bucket`/`_sum`/`_count` belong to it.
fn family_of(out: &Exposition, series: &str) -> String {
    for suffix in ["_bucket", "_sum", "_count"] {
        if let Some(base) = series.strip_suffix(suffix)
            && out
                .families
                .get(base)
                .is_some_and(|f| f.kind == "histogram")
        {
            return base.to_string();
        }
    }
    series.to_string()
}

fn enter<'a>(
    out: &'a mut Exposition,
    current: &mut Option<String>,
    closed: &mut Vec<String>,
    name: &str,
) -> Result<&'a mut ParsedFamily, String> {
    if current.as_deref() != Some(name) {
        if closed.iter().any(|c| c == name) {
            return Err(format!("family `{name}` continues after another family"));
        }
        if let Some(previous) = current.take() {
            closed.push(previous);
        }
        *current = Some(name.to_string());
    }
    Ok(out.families.entry(name.to_string()).or_default())
}

fn sample(line: &str) -> Result<ParsedSample, String> {
    let name_end = line.find(['{', ' ']).ok_or("no value")?;
    let name = &line[..name_end];
    if !crate::valid_metric_name(name) {
        return Err(format!("invalid metric name `{name}`"));
    }
    let mut rest = &line[name_end..];
    let mut labels = BTreeMap::new();
    if let Some(body) = rest.strip_prefix('{') {
        let mut chars = body.char_indices().peekable();
        loop {
            // label name
            let start = chars
                .peek()
                .map(|(i, _)| *i)
                .ok_or("unterminated label set")?;
            if body[start..].starts_with('}') {
                rest = &body[start + 1..];
                break;
            }
            let eq = body[start..].find('=').ok_or("label without `=`")? + start;
            let label = &body[start..eq];
            if !crate::valid_label_name(label) && label != "le" {
                return Err(format!("invalid label name `{label}`"));
            }
            if !body[eq + 1..].starts_with('"') {
                return Err(format!("label `{label}` value is not quoted"));
            }
            while chars.peek().is_some_and(|(i, _)| *i <= eq + 1) {
                chars.next();
            }
            let mut value = String::new();
            let mut end = None;
            while let Some((i, c)) = chars.next() {
                match c {
                    '"' => {
                        end = Some(i);
                        break;
                    }
                    '\\' => match chars.next() {
                        Some((_, '\\')) => value.push('\\'),
                        Some((_, '"')) => value.push('"'),
                        Some((_, 'n')) => value.push('\n'),
                        other => {
                            return Err(format!("invalid escape `\\{other:?}` in label `{label}`"));
                        }
                    },
                    '\n' => return Err("raw line feed in a label value".into()),
                    c => value.push(c),
                }
            }
            end.ok_or_else(|| format!("unterminated value of label `{label}`"))?;
            if labels.insert(label.to_string(), value).is_some() {
                return Err(format!("label `{label}` twice"));
            }
            match chars.next() {
                Some((_, ',')) => {}
                Some((i, '}')) => {
                    rest = &body[i + 1..];
                    break;
                }
                _ => return Err("expected `,` or `}` after a label".into()),
            }
        }
    }
    let rest = rest.strip_prefix(' ').ok_or("no space before the value")?;
    let mut fields = rest.split(' ');
    let value = float(fields.next().unwrap_or(""))?;
    if let Some(ts) = fields.next() {
        ts.parse::<i64>()
            .map_err(|_| format!("invalid timestamp `{ts}`"))?;
    }
    if fields.next().is_some() {
        return Err("text after the timestamp".into());
    }
    Ok(ParsedSample {
        name: name.to_string(),
        labels,
        value,
    })
}

fn float(text: &str) -> Result<f64, String> {
    match text {
        "+Inf" => Ok(f64::INFINITY),
        "-Inf" => Ok(f64::NEG_INFINITY),
        "NaN" => Ok(f64::NAN),
        t if t.is_empty()
            || t.chars()
                .any(|c| c.is_ascii_alphabetic() && c != 'e' && c != 'E') =>
        {
            Err(format!("invalid value `{t}`"))
        }
        t => t.parse().map_err(|_| format!("invalid value `{t}`")),
    }
}

fn unescape(text: &str, quotes: bool) -> Result<String, String> {
    let mut out = String::new();
    let mut chars = text.chars();
    while let Some(c) = chars.next() {
        if c != '\\' {
            out.push(c);
            continue;
        }
        match chars.next() {
            Some('\\') => out.push('\\'),
            Some('n') => out.push('\n'),
            Some('"') if quotes => out.push('"'),
            other => return Err(format!("invalid escape `\\{other:?}`")),
        }
    }
    Ok(out)
}

/// `(le, cumulative count)` buckets, `_count`, whether `_sum` was seen.
type HistogramSeries = (Vec<(f64, f64)>, Option<f64>, bool);

fn check_histogram(name: &str, family: &ParsedFamily) -> Result<(), String> {
    let mut groups: BTreeMap<Vec<(String, String)>, HistogramSeries> = BTreeMap::new();
    for s in &family.samples {
        let mut key: Vec<(String, String)> = s
            .labels
            .iter()
            .filter(|(k, _)| *k != "le")
            .map(|(k, v)| (k.clone(), v.clone()))
            .collect();
        key.sort();
        let group = groups.entry(key).or_default();
        if s.name.ends_with("_bucket") {
            let le = s
                .labels
                .get("le")
                .ok_or_else(|| format!("{name}: a bucket without `le`"))?;
            group.0.push((float(le)?, s.value));
        } else if s.name.ends_with("_count") {
            group.1 = Some(s.value);
        } else {
            group.2 = true;
        }
    }
    for (labels, (buckets, count, has_sum)) in groups {
        let what = format!("histogram {name}{labels:?}");
        if buckets
            .windows(2)
            .any(|w| w[0].0 >= w[1].0 || w[0].1 > w[1].1)
        {
            return Err(format!("{what}: buckets not increasing in `le` and count"));
        }
        let inf = buckets
            .last()
            .filter(|b| b.0 == f64::INFINITY)
            .ok_or_else(|| format!("{what}: no `+Inf` bucket"))?;
        if count != Some(inf.1) || !has_sum {
            return Err(format!(
                "{what}: `_count` missing or not the `+Inf` bucket, or no `_sum`"
            ));
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::names::{HTTP_REQUEST_DURATION_SECONDS, RUN_FINAL_EQUITY};
    use crate::{Histogram, Registry};

    #[test]
    fn reads_back_what_the_registry_renders() {
        let mut r = Registry::new();
        r.gauge(
            &RUN_FINAL_EQUITY,
            &[
                ("run_id", "a,b}{c"),
                ("name", "q\"\\\n"),
                ("currency", "USD"),
            ],
            7.25,
        )
        .unwrap();
        let mut h = Histogram::new(&[0.1]).unwrap();
        h.observe(0.05);
        r.histogram(
            &HTTP_REQUEST_DURATION_SECONDS,
            &[("method", "GET"), ("route", "/x/{id}")],
            &h,
        )
        .unwrap();
        let parsed = parse(&r.render()).unwrap();
        assert_eq!(
            parsed.value(
                "tradeloom_run_final_equity",
                &[("run_id", "a,b}{c"), ("name", "q\"\\\n")]
            ),
            Some(7.25)
        );
        assert_eq!(
            parsed.value(
                "tradeloom_http_request_duration_seconds_bucket",
                &[("route", "/x/{id}"), ("le", "+Inf")]
            ),
            Some(1.0)
        );
        assert_eq!(
            parsed.families["tradeloom_http_request_duration_seconds"].kind,
            "histogram"
        );
    }

    #[test]
    fn refuses_malformed_text() {
        for bad in [
            "x 1",                                                            // no final line feed
            "x{a=\"b\\t\"} 1\n",                                              // unknown escape
            "x{a=b} 1\n",                                                     // unquoted
            "x 1\nx 2\n",                                                     // duplicate series
            "x 1\n# TYPE x gauge\n",                                          // TYPE after samples
            "x 1\ny 1\nx{a=\"1\"} 1\n", // interleaved families
            "x one\n",                  // bad value
            "x inf\n",                  // Rust's spelling, not Go's
            "9x 1\n",                   // bad name
            "# TYPE h histogram\nh_bucket{le=\"1\"} 1\nh_sum 1\nh_count 1\n", // no +Inf
            "# TYPE h histogram\nh_bucket{le=\"1\"} 2\nh_bucket{le=\"+Inf\"} 1\nh_sum 1\nh_count 1\n",
            "# TYPE h histogram\nh_bucket{le=\"+Inf\"} 1\nh_sum 1\nh_count 2\n",
        ] {
            assert!(parse(bad).is_err(), "accepted {bad:?}");
        }
        assert!(parse("# a comment\n\nx{a=\"1\",} 1 1700000000000\n").is_ok());
    }
}
