//! A small JSON Schema validator for tool arguments. The tools' schemas are ours and use only
//! `type`, `properties`, `required`, `additionalProperties: false`, `minimum`, `maximum`,
//! `minLength`, `maxLength`, `enum` and `format: date`; this checks exactly those, and every
//! problem is reported with the argument's name so the model can fix its call.

use serde_json::Value;

/// Every way `value` breaks `schema` (empty when it conforms). `path` names the argument
/// (`arguments`, `arguments.quantity`).
pub fn validate(schema: &Value, value: &Value) -> Vec<String> {
    let mut errors = Vec::new();
    check(schema, value, "arguments", &mut errors);
    errors
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
}
