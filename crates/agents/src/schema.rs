//! A small JSON Schema validator for tool arguments and skills' inputs and outputs. It checks
//! `type`, `properties`, `required`, `additionalProperties: false`, `items`, `minItems`,
//! `maxItems`, `minimum`, `maximum`, `minLength`, `maxLength`, `enum` and `format: date`
//! ([`schema_problems`] refuses a registered schema using anything else), and every problem is
//! reported with the argument's name so the model can fix its call.

use serde_json::Value;

/// Every way `value` breaks `schema` (empty when it conforms). `path` names the argument
/// (`arguments`, `arguments.quantity`).
pub fn validate(schema: &Value, value: &Value) -> Vec<String> {
    let mut errors = Vec::new();
    check(schema, value, "arguments", &mut errors);
    errors
}

/// The keywords [`validate`] checks, and annotations it may ignore.
pub const SCHEMA_KEYWORDS: [&str; 16] = [
    "type",
    "properties",
    "required",
    "additionalProperties",
    "items",
    "minItems",
    "maxItems",
    "minimum",
    "maximum",
    "minLength",
    "maxLength",
    "enum",
    "format",
    "description",
    "title",
    "default",
];

const SCHEMA_TYPES: [&str; 7] = [
    "null", "boolean", "integer", "number", "string", "array", "object",
];

/// Every way `schema` (at `path`, e.g. `input_schema`) uses JSON Schema that [`validate`]
/// would not enforce: a keyword it does not know, a `type` it does not know, a malformed
/// `properties`, `required` or `enum`. A schema a user registers must pass, so that what it
/// says is what is checked.
pub fn schema_problems(schema: &Value, path: &str) -> Vec<String> {
    let mut out = Vec::new();
    schema_walk(schema, path, &mut out);
    out
}

fn schema_walk(schema: &Value, path: &str, out: &mut Vec<String>) {
    let Some(map) = schema.as_object() else {
        out.push(format!("`{path}` must be a JSON Schema object"));
        return;
    };
    let mut keys: Vec<&String> = map.keys().collect();
    keys.sort();
    for key in keys {
        let value = &map[key];
        let at = format!("{path}.{key}");
        match key.as_str() {
            "type" => {
                if !value.as_str().is_some_and(|t| SCHEMA_TYPES.contains(&t)) {
                    out.push(format!(
                        "`{at}` must be one of {} (one type, not a list)",
                        SCHEMA_TYPES.join(", ")
                    ));
                }
            }
            "properties" => match value.as_object() {
                Some(props) => {
                    let mut names: Vec<&String> = props.keys().collect();
                    names.sort();
                    for name in names {
                        schema_walk(&props[name], &format!("{at}.{name}"), out);
                    }
                }
                None => out.push(format!("`{at}` must be an object of schemas")),
            },
            "items" => schema_walk(value, &at, out),
            "required" => {
                if !value
                    .as_array()
                    .is_some_and(|r| r.iter().all(Value::is_string))
                {
                    out.push(format!("`{at}` must be a list of property names"));
                }
            }
            "additionalProperties" => {
                if !value.is_boolean() {
                    out.push(format!("`{at}` must be true or false"));
                }
            }
            "enum" => {
                if !value.is_array() {
                    out.push(format!("`{at}` must be a list"));
                }
            }
            "minimum" | "maximum" => {
                if !value.is_number() {
                    out.push(format!("`{at}` must be a number"));
                }
            }
            "minLength" | "maxLength" | "minItems" | "maxItems" => {
                if !value.is_u64() {
                    out.push(format!("`{at}` must be a whole number"));
                }
            }
            "format" => {
                if value.as_str() != Some("date") {
                    out.push(format!("`{at}`: only `date` (YYYY-MM-DD) is checked"));
                }
            }
            "description" | "title" | "default" => {}
            other => out.push(format!(
                "`{at}`: keyword `{other}` is not supported; use {}",
                SCHEMA_KEYWORDS.join(", ")
            )),
        }
    }
}

fn type_name(value: &Value) -> &'static str {
    match value {
        Value::Null => "null",
        Value::Bool(_) => "boolean",
        Value::Number(n) if n.is_i64() || n.is_u64() => "integer",
        Value::Number(_) => "number",
        Value::String(_) => "string",
        Value::Array(_) => "array",
        Value::Object(_) => "object",
    }
}

fn matches_type(expected: &str, value: &Value) -> bool {
    match expected {
        "integer" => match value {
            Value::Number(n) => {
                n.is_i64() || n.is_u64() || n.as_f64().is_some_and(|f| f.fract() == 0.0)
            }
            _ => false,
        },
        "number" => value.is_number(),
        other => type_name(value) == other,
    }
}

fn check(schema: &Value, value: &Value, path: &str, errors: &mut Vec<String>) {
    if let Some(expected) = schema.get("type").and_then(Value::as_str)
        && !matches_type(expected, value)
    {
        errors.push(format!(
            "`{path}` must be {} {expected}, got {} {}",
            if expected == "integer" || expected == "object" || expected == "array" {
                "an"
            } else {
                "a"
            },
            type_name(value),
            truncate(&value.to_string(), 60)
        ));
        return;
    }
    if let Some(options) = schema.get("enum").and_then(Value::as_array)
        && !options.contains(value)
    {
        let list: Vec<String> = options.iter().map(Value::to_string).collect();
        errors.push(format!(
            "`{path}` must be one of {}, got {value}",
            list.join(", ")
        ));
    }
    match value {
        Value::Array(items) => {
            if let Some(item_schema) = schema.get("items") {
                for (i, item) in items.iter().enumerate() {
                    check(item_schema, item, &format!("{path}[{i}]"), errors);
                }
            }
            if let Some(min) = schema.get("minItems").and_then(Value::as_u64)
                && (items.len() as u64) < min
            {
                errors.push(format!("`{path}` must have at least {min} items"));
            }
            if let Some(max) = schema.get("maxItems").and_then(Value::as_u64)
                && (items.len() as u64) > max
            {
                errors.push(format!(
                    "`{path}` must have at most {max} items, got {}",
                    items.len()
                ));
            }
        }
        Value::Object(map) => {
            let properties = schema.get("properties").and_then(Value::as_object);
            if let Some(required) = schema.get("required").and_then(Value::as_array) {
                for name in required.iter().filter_map(Value::as_str) {
                    if !map.contains_key(name) {
                        errors.push(format!("missing required argument `{name}`"));
                    }
                }
            }
            // Sorted, so the report does not depend on serde_json's map order.
            let mut names: Vec<&String> = map.keys().collect();
            names.sort();
            for name in names {
                let item = &map[name];
                match properties.and_then(|p| p.get(name)) {
                    Some(sub) => check(sub, item, &format!("{path}.{name}"), errors),
                    None if schema.get("additionalProperties") == Some(&Value::Bool(false)) => {
                        let mut known: Vec<&str> = properties
                            .map(|p| p.keys().map(String::as_str).collect())
                            .unwrap_or_default();
                        known.sort_unstable();
                        errors.push(format!(
                            "unknown argument `{name}`; expected {}",
                            if known.is_empty() {
                                "none".to_string()
                            } else {
                                known.join(", ")
                            }
                        ));
                    }
                    None => {}
                }
            }
        }
        Value::Number(n) => {
            let x = n.as_f64().unwrap_or(f64::NAN);
            if let Some(min) = schema.get("minimum").and_then(Value::as_f64)
                && x < min
            {
                errors.push(format!("`{path}` must be at least {min}, got {n}"));
            }
            if let Some(max) = schema.get("maximum").and_then(Value::as_f64)
                && x > max
            {
                errors.push(format!("`{path}` must be at most {max}, got {n}"));
            }
        }
        Value::String(s) => {
            let len = s.chars().count() as u64;
            if let Some(min) = schema.get("minLength").and_then(Value::as_u64)
                && len < min
            {
                errors.push(format!("`{path}` must have at least {min} characters"));
            }
            if let Some(max) = schema.get("maxLength").and_then(Value::as_u64)
                && len > max
            {
                errors.push(format!(
                    "`{path}` must have at most {max} characters, got {len}"
                ));
            }
            if schema.get("format").and_then(Value::as_str) == Some("date")
                && chrono::NaiveDate::parse_from_str(s, "%Y-%m-%d").is_err()
            {
                errors.push(format!(
                    "`{path}` must be a date YYYY-MM-DD, got \"{}\"",
                    truncate(s, 40)
                ));
            }
        }
        _ => {}
    }
}

fn truncate(text: &str, max: usize) -> String {
    if text.chars().count() <= max {
        text.to_string()
    } else {
        format!("{}…", text.chars().take(max).collect::<String>())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn order_schema() -> Value {
        json!({
            "type": "object",
            "properties": {
                "symbol": {"type": "string", "minLength": 1, "maxLength": 31},
                "quantity": {"type": "integer", "minimum": 1},
                "date": {"type": "string", "format": "date"},
                "side": {"enum": ["buy", "sell"]}
            },
            "required": ["symbol", "quantity"],
            "additionalProperties": false
        })
    }

    #[test]
    fn accepts_conforming_arguments() {
        let s = order_schema();
        assert!(validate(&s, &json!({"symbol": "AAA", "quantity": 10})).is_empty());
        assert!(
            validate(
                &s,
                &json!({"symbol": "AAA", "quantity": 10.0, "date": "2025-01-02"})
            )
            .is_empty()
        );
    }

    #[test]
    fn reports_every_problem_by_name() {
        let s = order_schema();
        assert_eq!(
            validate(&s, &json!({"symbol": "AAA", "quantity": "lots"})),
            vec!["`arguments.quantity` must be an integer, got string \"lots\""]
        );
        assert_eq!(
            validate(
                &s,
                &json!({"quantity": 0, "venue": "x", "date": "2025-13-01", "side": "hold"})
            ),
            vec![
                "missing required argument `symbol`",
                "`arguments.date` must be a date YYYY-MM-DD, got \"2025-13-01\"",
                "`arguments.quantity` must be at least 1, got 0",
                "`arguments.side` must be one of \"buy\", \"sell\", got \"hold\"",
                "unknown argument `venue`; expected date, quantity, side, symbol",
            ]
        );
        assert_eq!(
            validate(&s, &json!([1])),
            vec!["`arguments` must be an object, got array [1]"]
        );
        assert_eq!(
            validate(&s, &json!({"symbol": "", "quantity": 1.5})),
            vec![
                "`arguments.quantity` must be an integer, got number 1.5",
                "`arguments.symbol` must have at least 1 characters",
            ]
        );
    }

    #[test]
    fn checks_array_items_and_refuses_unsupported_keywords() {
        let s = json!({"type": "object", "properties": {"closes": {"type": "array", "items": {"type": "number"}, "minItems": 2}}});
        assert!(validate(&s, &json!({"closes": [1, 2.5]})).is_empty());
        assert_eq!(
            validate(&s, &json!({"closes": [1, "x"]})),
            vec!["`arguments.closes[1]` must be a number, got string \"x\""]
        );
        assert_eq!(
            validate(&s, &json!({"closes": [1]})),
            vec!["`arguments.closes` must have at least 2 items"]
        );
        assert!(schema_problems(&s, "input_schema").is_empty());
        let bad = json!({"type": ["object"], "properties": {"p": {"pattern": "^a"}}, "oneOf": []});
        let problems = schema_problems(&bad, "input_schema");
        assert_eq!(problems.len(), 3, "{problems:?}");
        assert!(
            problems[0].starts_with("`input_schema.oneOf`: keyword `oneOf`"),
            "{problems:?}"
        );
        assert!(
            problems[1].starts_with("`input_schema.properties.p.pattern`"),
            "{problems:?}"
        );
        assert!(
            problems[2].starts_with("`input_schema.type` must be one of"),
            "{problems:?}"
        );
    }
}
