//! Canonical JSON (object keys sorted by their UTF-8 bytes, no whitespace) for content
//! hashes, and the one way parse errors name their place in a text.

use serde_json::Value;

/// `value` as canonical JSON: keys sorted whatever order the map keeps them in, no whitespace,
/// scalars in serde_json's compact form (numbers in shortest round-trip form). Two values that
/// differ only in key order or formatting give the same text.
pub fn canonical_json(value: &Value) -> String {
    let mut out = String::new();
    write_canonical(value, &mut out);
    out
}

fn write_canonical(value: &Value, out: &mut String) {
    match value {
        Value::Object(map) => {
            let mut keys: Vec<&String> = map.keys().collect();
            keys.sort();
            out.push('{');
            for (i, key) in keys.into_iter().enumerate() {
                if i > 0 {
                    out.push(',');
                }
                out.push_str(&Value::String(key.clone()).to_string());
                out.push(':');
                write_canonical(&map[key], out);
            }
            out.push('}');
        }
        Value::Array(items) => {
            out.push('[');
            for (i, item) in items.iter().enumerate() {
                if i > 0 {
                    out.push(',');
                }
                write_canonical(item, out);
            }
            out.push(']');
        }
        scalar => out.push_str(&scalar.to_string()),
    }
}

/// `(place, message)` of a parse error in the text `origin`: `origin:line:column` when the
/// parser knows the position, and the message without the parser's own trailing
/// ` at line L column C`, so the position is said once, in front.
pub fn locate_error(
    origin: &str,
    message: String,
    line_column: Option<(usize, usize)>,
) -> (String, String) {
    match line_column {
        Some((line, column)) => {
            let suffix = format!(" at line {line} column {column}");
            let message = match message.strip_suffix(&suffix) {
                Some(stripped) => stripped.to_string(),
                None => message,
            };
            (format!("{origin}:{line}:{column}"), message)
        }
        None => (origin.to_string(), message),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn keys_sorted_and_no_whitespace() {
        let v = json!({"b": [1, {"z": null, "a": "x"}], "a": 2.5});
        assert_eq!(
            canonical_json(&v),
            r#"{"a":2.5,"b":[1,{"a":"x","z":null}]}"#
        );
    }

    #[test]
    fn the_position_is_said_once() {
        assert_eq!(
            locate_error("f.yaml", "bad at line 3 column 5".into(), Some((3, 5))),
            ("f.yaml:3:5".to_string(), "bad".to_string())
        );
        assert_eq!(
            locate_error("f.yaml", "bad".into(), None),
            ("f.yaml".to_string(), "bad".to_string())
        );
    }
}
