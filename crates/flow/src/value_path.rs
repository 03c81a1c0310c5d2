//! [`ValuePath`]: a path into the run context, used by templates and predicates.
//!
//! ```text
//! a.x    a.items[0].name    inputs.symbol    run.id    review["odd key"]
//! ```
//!
//! The first name is the root: a node id, `inputs` or `run`. Names are made of ASCII letters,
//! digits, `_` and `-` (node ids may contain `-`); other keys are written `["..."]`.

use std::fmt;

use serde_json::Value;

use crate::field_path::{FieldPath, Segment};

/// A parsed path into the run context. Displays in canonical form (`a.items[0]`).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ValuePath {
    /// Always starts with a `Segment::Key` (the root).
    path: FieldPath,
}

/// A parse failure: 0-based character offset in the parsed text, and what is wrong.
pub(crate) type SyntaxError = (usize, String);

pub(crate) fn is_name_char(c: char) -> bool {
    c.is_ascii_alphanumeric() || c == '_' || c == '-'
}

/// Where a [`ValuePath`] stops in a context (the path walked so far, and why).
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum ResolveError {
    /// The first name is not a root of the context.
    #[error("`{0}` is not in the context")]
    NoRoot(String),
    /// An object without the field.
    #[error("`{at}` has no field `{field}`")]
    NoField { at: String, field: String },
    /// An array shorter than the index.
    #[error("`{at}` has {len} element(s); index {index} is out of range")]
    NoIndex {
        at: String,
        len: usize,
        index: usize,
    },
    /// A field read from something that is not an object.
    #[error("`{at}` is {kind}, not an object (looking for field `{field}`)")]
    NotObject {
        at: String,
        kind: &'static str,
        field: String,
    },
    /// An index read from something that is not an array.
    #[error("`{at}` is {kind}, not an array (looking for index {index})")]
    NotArray {
        at: String,
        kind: &'static str,
        index: usize,
    },
}

impl ValuePath {
    /// The root name (a node id, `inputs` or `run`).
    pub fn root(&self) -> &str {
        match self.path.segments().first() {
            Some(Segment::Key(k)) => k,
            // A path is only built by `parse`, which always starts with a name.
            _ => "",
        }
    }

    /// The steps after the root.
    pub fn rest(&self) -> &[Segment] {
        self.path.segments().get(1..).unwrap_or(&[])
    }

    /// Parses a path starting at `start`; returns it and the offset just after it.
    pub(crate) fn parse(chars: &[char], start: usize) -> Result<(ValuePath, usize), SyntaxError> {
        let mut pos = start;
        let root = take_name(chars, &mut pos);
        if root.is_empty() {
            return Err((start, expected("a name", chars, start)));
        }
        let mut path = FieldPath::root().key(&root);
        loop {
            match chars.get(pos) {
                Some('.') => {
                    pos += 1;
                    let name = take_name(chars, &mut pos);
                    if name.is_empty() {
                        return Err((pos, expected("a field name after `.`", chars, pos)));
                    }
                    path = path.key(&name);
                }
                Some('[') => {
                    pos += 1;
                    skip_spaces(chars, &mut pos);
                    match chars.get(pos) {
                        Some('"') => {
                            let (key, next) = parse_string(chars, pos)?;
                            pos = next;
                            path = path.key(&key);
                        }
                        Some(c) if c.is_ascii_digit() => {
                            let begin = pos;
                            while chars.get(pos).is_some_and(|c| c.is_ascii_digit()) {
                                pos += 1;
                            }
                            let digits: String = chars[begin..pos].iter().collect();
                            let index = digits
                                .parse::<usize>()
                                .map_err(|_| (begin, format!("index `{digits}` is too large")))?;
                            path = path.index(index);
                        }
                        _ => {
                            return Err((
                                pos,
                                expected("an index or a quoted key after `[`", chars, pos),
                            ));
                        }
                    }
                    skip_spaces(chars, &mut pos);
                    if chars.get(pos) != Some(&']') {
                        return Err((pos, expected("`]`", chars, pos)));
                    }
                    pos += 1;
                }
                _ => return Ok((ValuePath { path }, pos)),
            }
        }
    }

    /// The value at this path in `context`, or a sentence saying where the path stops.
    pub fn resolve<'v>(&self, context: &'v Value) -> Result<&'v Value, ResolveError> {
        let root = self.root();
        let mut current = context
            .get(root)
            .ok_or_else(|| ResolveError::NoRoot(root.to_string()))?;
        let mut walked = FieldPath::root().key(root);
        for segment in self.rest() {
            current = match (segment, current) {
                (Segment::Key(k), Value::Object(map)) => {
                    map.get(k).ok_or_else(|| ResolveError::NoField {
                        at: walked.to_string(),
                        field: k.clone(),
                    })?
                }
                (Segment::Index(i), Value::Array(items)) => {
                    items.get(*i).ok_or_else(|| ResolveError::NoIndex {
                        at: walked.to_string(),
                        len: items.len(),
                        index: *i,
                    })?
                }
                (Segment::Key(k), other) => {
                    return Err(ResolveError::NotObject {
                        at: walked.to_string(),
                        kind: kind_of(other),
                        field: k.clone(),
                    });
                }
                (Segment::Index(i), other) => {
                    return Err(ResolveError::NotArray {
                        at: walked.to_string(),
                        kind: kind_of(other),
                        index: *i,
                    });
                }
            };
            walked = match segment {
                Segment::Key(k) => walked.key(k),
                Segment::Index(i) => walked.index(*i),
            };
        }
        Ok(current)
    }
}

impl fmt::Display for ValuePath {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        self.path.fmt(f)
    }
}

/// `a string`, `a number`, … for error messages.
pub(crate) fn kind_of(value: &Value) -> &'static str {
    match value {
        Value::Null => "null",
        Value::Bool(_) => "a boolean",
        Value::Number(_) => "a number",
        Value::String(_) => "a string",
        Value::Array(_) => "an array",
        Value::Object(_) => "an object",
    }
}

fn take_name(chars: &[char], pos: &mut usize) -> String {
    let begin = *pos;
    while chars.get(*pos).is_some_and(|c| is_name_char(*c)) {
        *pos += 1;
    }
    chars[begin..*pos].iter().collect()
}

pub(crate) fn skip_spaces(chars: &[char], pos: &mut usize) {
    while chars.get(*pos).is_some_and(|c| c.is_whitespace()) {
        *pos += 1;
    }
}

/// "expected X, found `c`" (or "found the end").
pub(crate) fn expected(what: &str, chars: &[char], pos: usize) -> String {
    match chars.get(pos) {
        Some(c) => format!("expected {what}, found `{c}`"),
        None => format!("expected {what}, found the end"),
    }
}

/// A double-quoted string with JSON escapes starting at `start` (the quote); returns the string
/// and the offset after the closing quote.
pub(crate) fn parse_string(chars: &[char], start: usize) -> Result<(String, usize), SyntaxError> {
    let mut pos = start + 1;
    loop {
        match chars.get(pos) {
            None => return Err((start, "unclosed string".to_string())),
            Some('\\') => pos += 2,
            Some('"') => break,
            Some(_) => pos += 1,
        }
    }
    let literal: String = chars[start..=pos].iter().collect();
    let text = serde_json::from_str::<String>(&literal)
        .map_err(|e| (start, format!("invalid string {literal}: {e}")))?;
    Ok((text, pos + 1))
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn parse(text: &str) -> Result<ValuePath, SyntaxError> {
        let chars: Vec<char> = text.chars().collect();
        let (path, end) = ValuePath::parse(&chars, 0)?;
        assert_eq!(end, chars.len(), "{text} not fully parsed");
        Ok(path)
    }

    #[test]
    fn parses_and_displays_canonically() {
        let p = parse("a.items[ 0 ].name").unwrap();
        assert_eq!(p.root(), "a");
        assert_eq!(p.to_string(), "a.items[0].name");
        assert_eq!(
            parse("review[\"odd key\"]").unwrap().to_string(),
            "review[\"odd key\"]"
        );
        assert_eq!(parse("my-node.x_1").unwrap().root(), "my-node");
    }

    #[test]
    fn reports_the_offending_column() {
        assert_eq!(
            parse("a.").unwrap_err(),
            (
                2,
                "expected a field name after `.`, found the end".to_string()
            )
        );
        assert_eq!(parse("a[x]").unwrap_err().0, 2);
        assert_eq!(parse("a[0").unwrap_err().0, 3);
    }

    #[test]
    fn resolves_or_says_where_it_stops() {
        let ctx = json!({"a": {"items": [{"name": "n"}], "x": 1}});
        let p = |t: &str| parse(t).unwrap();
        assert_eq!(p("a.items[0].name").resolve(&ctx), Ok(&json!("n")));
        assert_eq!(
            p("b.x").resolve(&ctx).unwrap_err().to_string(),
            "`b` is not in the context"
        );
        assert_eq!(
            p("a.items[3]").resolve(&ctx).unwrap_err().to_string(),
            "`a.items` has 1 element(s); index 3 is out of range"
        );
        assert_eq!(
            p("a.y").resolve(&ctx).unwrap_err().to_string(),
            "`a` has no field `y`"
        );
        assert_eq!(
            p("a.x.y").resolve(&ctx).unwrap_err().to_string(),
            "`a.x` is a number, not an object (looking for field `y`)"
        );
    }
}
