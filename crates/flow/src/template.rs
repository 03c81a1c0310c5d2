//! Templates: strings with `{{ path }}` holes filled from the run context.
//!
//! - A string that is exactly one hole (`"{{ a.x }}"`) renders to the raw JSON value at the path:
//!   a number stays a number, an object stays an object.
//! - Anything else is interpolation: text is kept, each hole is replaced by the value — strings
//!   verbatim, everything else (numbers, booleans, `null`, arrays, objects) as compact JSON.
//! - A hole holds a [`ValuePath`] (`a.items[0].name`, `inputs.symbol`, `run.id`); spaces around it
//!   are ignored. There are no filters or expressions, and no escape for a literal `{{`.
//!
//! Templates are parsed when a definition is compiled, so syntax errors are compile errors; a
//! path that does not resolve at run time is a [`RenderError`].

use std::collections::BTreeMap;
use std::fmt;

use serde::{Serialize, Serializer};
use serde_json::{Map, Number, Value};

use crate::field_path::FieldPath;
use crate::value_path::{ValuePath, expected, skip_spaces};

/// A template syntax error; `column` is 1-based, in characters.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error("{message} at column {column}")]
pub struct TemplateError {
    pub column: usize,
    pub message: String,
}

/// A hole whose path did not resolve against the context.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error("{{{{ {path} }}}}: {reason}")]
pub struct RenderError {
    /// The path in the hole, canonical.
    pub path: String,
    /// Where the path stops (`` `a` has no field `y` ``).
    pub reason: String,
}

#[derive(Clone, Debug, PartialEq, Eq)]
enum Part {
    Text(String),
    Hole(ValuePath),
}

/// A parsed template string. Displays (and serialises) in canonical form: holes written
/// `{{ path }}` with single spaces.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Template {
    parts: Vec<Part>,
}

impl Template {
    /// Parses `text`; fails on an unclosed `{{`, an empty hole or a bad path.
    pub fn parse(text: &str) -> Result<Template, TemplateError> {
        let chars: Vec<char> = text.chars().collect();
        let mut parts = Vec::new();
        let mut literal = String::new();
        let mut pos = 0;
        while pos < chars.len() {
            if chars[pos] == '{' && chars.get(pos + 1) == Some(&'{') {
                let open = pos;
                let close = (open + 2..chars.len().saturating_sub(1))
                    .find(|&i| chars[i] == '}' && chars[i + 1] == '}')
                    .ok_or_else(|| TemplateError {
                        column: open + 1,
                        message: "unclosed {{".to_string(),
                    })?;
                let inner = &chars[..close];
                let mut at = open + 2;
                skip_spaces(inner, &mut at);
                if at == close {
                    return Err(TemplateError {
                        column: open + 1,
                        message: "empty {{ }}".to_string(),
                    });
                }
                let (path, mut end) =
                    ValuePath::parse(inner, at).map_err(|(offset, message)| TemplateError {
                        column: offset + 1,
                        message,
                    })?;
                skip_spaces(inner, &mut end);
                if end != close {
                    return Err(TemplateError {
                        column: end + 1,
                        message: expected("`}}` after the path", inner, end),
                    });
                }
                if !literal.is_empty() {
                    parts.push(Part::Text(std::mem::take(&mut literal)));
                }
                parts.push(Part::Hole(path));
                pos = close + 2;
            } else {
                literal.push(chars[pos]);
                pos += 1;
            }
        }
        if !literal.is_empty() {
            parts.push(Part::Text(literal));
        }
        Ok(Template { parts })
    }

    /// Whether the template is exactly one hole (and so renders to a raw value).
    pub fn is_raw(&self) -> bool {
        matches!(self.parts.as_slice(), [Part::Hole(_)])
    }

    /// Whether the template has no holes.
    pub fn is_literal(&self) -> bool {
        self.parts.iter().all(|p| matches!(p, Part::Text(_)))
    }

    /// The text before the first hole (all of it when there is none).
    pub fn literal_prefix(&self) -> &str {
        match self.parts.first() {
            Some(Part::Text(t)) => t,
            _ => "",
        }
    }

    /// The paths in the holes, in order.
    pub fn references(&self) -> impl Iterator<Item = &ValuePath> {
        self.parts.iter().filter_map(|p| match p {
            Part::Hole(path) => Some(path),
            Part::Text(_) => None,
        })
    }

    /// Renders against `context`: the raw value for a single hole, otherwise a string.
    pub fn render(&self, context: &Value) -> Result<Value, RenderError> {
        if let [Part::Hole(path)] = self.parts.as_slice() {
            return lookup(path, context).cloned();
        }
        self.render_string(context).map(Value::String)
    }

    /// Renders to text whatever the template is (for URLs, headers, prompts): a single hole
    /// holding a string gives that string, any other value its compact JSON.
    pub fn render_string(&self, context: &Value) -> Result<String, RenderError> {
        let mut out = String::new();
        for part in &self.parts {
            match part {
                Part::Text(t) => out.push_str(t),
                Part::Hole(path) => match lookup(path, context)? {
                    Value::String(s) => out.push_str(s),
                    other => out.push_str(&other.to_string()),
                },
            }
        }
        Ok(out)
    }
}

fn lookup<'v>(path: &ValuePath, context: &'v Value) -> Result<&'v Value, RenderError> {
    path.resolve(context).map_err(|e| RenderError {
        path: path.to_string(),
        reason: e.to_string(),
    })
}

impl fmt::Display for Template {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for part in &self.parts {
            match part {
                Part::Text(t) => f.write_str(t)?,
                Part::Hole(path) => write!(f, "{{{{ {path} }}}}")?,
            }
        }
        Ok(())
    }
}

impl Serialize for Template {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.collect_str(self)
    }
}

/// A JSON value whose strings are templates (a transform's `output`, an HTTP `body`).
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum JsonTemplate {
    Null,
    Bool(bool),
    Number(Number),
    String(Template),
    Array(Vec<JsonTemplate>),
    /// Keys are plain text, not templates.
    Object(BTreeMap<String, JsonTemplate>),
}

impl JsonTemplate {
    /// Parses every string in `value`; on failure returns every bad string with its path
    /// relative to `value`.
    pub fn parse(value: &Value) -> Result<JsonTemplate, Vec<(FieldPath, TemplateError)>> {
        let mut errors = Vec::new();
        let parsed = Self::parse_at(value, &FieldPath::root(), &mut errors);
        if errors.is_empty() {
            Ok(parsed)
        } else {
            Err(errors)
        }
    }

    fn parse_at(
        value: &Value,
        at: &FieldPath,
        errors: &mut Vec<(FieldPath, TemplateError)>,
    ) -> JsonTemplate {
        match value {
            Value::Null => JsonTemplate::Null,
            Value::Bool(b) => JsonTemplate::Bool(*b),
            Value::Number(n) => JsonTemplate::Number(n.clone()),
            Value::String(s) => match Template::parse(s) {
                Ok(t) => JsonTemplate::String(t),
                Err(e) => {
                    errors.push((at.clone(), e));
                    JsonTemplate::Null
                }
            },
            Value::Array(items) => JsonTemplate::Array(
                items
                    .iter()
                    .enumerate()
                    .map(|(i, v)| Self::parse_at(v, &at.index(i), errors))
                    .collect(),
            ),
            Value::Object(map) => JsonTemplate::Object(
                map.iter()
                    .map(|(k, v)| (k.clone(), Self::parse_at(v, &at.key(k), errors)))
                    .collect(),
            ),
        }
    }

    /// Every template with its path relative to this value, in document order.
    pub fn templates(&self) -> Vec<(FieldPath, &Template)> {
        let mut out = Vec::new();
        self.collect(&FieldPath::root(), &mut out);
        out
    }

    fn collect<'a>(&'a self, at: &FieldPath, out: &mut Vec<(FieldPath, &'a Template)>) {
        match self {
            JsonTemplate::String(t) => out.push((at.clone(), t)),
            JsonTemplate::Array(items) => {
                for (i, item) in items.iter().enumerate() {
                    item.collect(&at.index(i), out);
                }
            }
            JsonTemplate::Object(map) => {
                for (k, v) in map {
                    v.collect(&at.key(k), out);
                }
            }
            JsonTemplate::Null | JsonTemplate::Bool(_) | JsonTemplate::Number(_) => {}
        }
    }

    /// Renders every string against `context` (see [`Template::render`]).
    pub fn render(&self, context: &Value) -> Result<Value, RenderError> {
        Ok(match self {
            JsonTemplate::Null => Value::Null,
            JsonTemplate::Bool(b) => Value::Bool(*b),
            JsonTemplate::Number(n) => Value::Number(n.clone()),
            JsonTemplate::String(t) => t.render(context)?,
            JsonTemplate::Array(items) => Value::Array(
                items
                    .iter()
                    .map(|i| i.render(context))
                    .collect::<Result<_, _>>()?,
            ),
            JsonTemplate::Object(map) => {
                let mut out = Map::new();
                for (k, v) in map {
                    out.insert(k.clone(), v.render(context)?);
                }
                Value::Object(out)
            }
        })
    }
}

impl Serialize for JsonTemplate {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        match self {
            JsonTemplate::Null => serializer.serialize_unit(),
            JsonTemplate::Bool(b) => serializer.serialize_bool(*b),
            JsonTemplate::Number(n) => n.serialize(serializer),
            JsonTemplate::String(t) => t.serialize(serializer),
            JsonTemplate::Array(items) => items.serialize(serializer),
            JsonTemplate::Object(map) => map.serialize(serializer),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn ctx() -> Value {
        json!({
            "a": {"x": 1, "items": [{"name": "first"}], "flag": true},
            "inputs": {"symbol": "GOOG"},
            "run": {"id": "r1"}
        })
    }

    #[test]
    fn a_single_hole_yields_the_raw_value() {
        let t = Template::parse("{{ a.x }}").unwrap();
        assert!(t.is_raw());
        assert_eq!(t.render(&ctx()), Ok(json!(1)));
        let t = Template::parse("{{a.items}}").unwrap();
        assert_eq!(t.render(&ctx()), Ok(json!([{"name": "first"}])));
    }

    #[test]
    fn anything_else_interpolates() {
        let t = Template::parse("buy {{ inputs.symbol }} x{{ a.x }} ({{ a.flag }})").unwrap();
        assert!(!t.is_raw());
        assert_eq!(t.render(&ctx()), Ok(json!("buy GOOG x1 (true)")));
        let t = Template::parse(" {{ a.x }}").unwrap();
        assert_eq!(t.render(&ctx()), Ok(json!(" 1")));
        assert_eq!(
            Template::parse("{{ a.items }}!")
                .unwrap()
                .render(&ctx())
                .unwrap(),
            json!("[{\"name\":\"first\"}]!")
        );
        let plain = Template::parse("no holes } here {").unwrap();
        assert!(plain.is_literal());
        assert_eq!(plain.render(&ctx()), Ok(json!("no holes } here {")));
    }

    #[test]
    fn render_string_always_gives_text() {
        let t = Template::parse("{{ a.x }}").unwrap();
        assert_eq!(t.render_string(&ctx()), Ok("1".to_string()));
        let t = Template::parse("{{ inputs.symbol }}").unwrap();
        assert_eq!(t.render_string(&ctx()), Ok("GOOG".to_string()));
    }

    #[test]
    fn a_missing_path_is_a_clear_error() {
        let t = Template::parse("{{ a.items[2].name }}").unwrap();
        let e = t.render(&ctx()).unwrap_err();
        assert_eq!(
            e.to_string(),
            "{{ a.items[2].name }}: `a.items` has 1 element(s); index 2 is out of range"
        );
        let e = Template::parse("x {{ b.y }}")
            .unwrap()
            .render(&ctx())
            .unwrap_err();
        assert_eq!(e.to_string(), "{{ b.y }}: `b` is not in the context");
    }

    #[test]
    fn syntax_errors_carry_the_column() {
        let e = Template::parse("abc {{ a.x").unwrap_err();
        assert_eq!(e.to_string(), "unclosed {{ at column 5");
        let e = Template::parse("{{ }}").unwrap_err();
        assert_eq!(e.to_string(), "empty {{ }} at column 1");
        let e = Template::parse("{{ a.x + 1 }}").unwrap_err();
        assert_eq!(
            e.to_string(),
            "expected `}}` after the path, found `+` at column 8"
        );
        let e = Template::parse("{{ a..x }}").unwrap_err();
        assert_eq!(e.column, 6);
    }

    #[test]
    fn canonical_form_normalises_spacing() {
        let a = Template::parse("{{a.x}} and {{   a.items[ 0 ] }}").unwrap();
        assert_eq!(a.to_string(), "{{ a.x }} and {{ a.items[0] }}");
        assert_eq!(serde_json::to_value(&a).unwrap(), json!(a.to_string()));
    }

    #[test]
    fn json_templates_render_recursively_and_report_every_bad_string() {
        let v = json!({"y": "{{ a.x }}", "list": ["{{ inputs.symbol }}-1", 2, null]});
        let t = JsonTemplate::parse(&v).unwrap();
        assert_eq!(
            t.render(&ctx()),
            Ok(json!({"y": 1, "list": ["GOOG-1", 2, null]}))
        );
        assert_eq!(t.templates().len(), 2);
        let bad = json!({"p": "{{ a", "q": ["ok", "{{}}"]});
        let errors = JsonTemplate::parse(&bad).unwrap_err();
        let paths: Vec<String> = errors.iter().map(|(p, _)| p.to_string()).collect();
        assert_eq!(paths, ["p", "q[1]"]);
    }
}
