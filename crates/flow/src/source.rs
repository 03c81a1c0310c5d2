//! [`Source`]: the text a definition was parsed from, kept so that errors found after parsing
//! (by the compiler) can still name the line.
//!
//! Neither YAML nor JSON deserialisers report where a value that parsed fine came from, but both
//! report where an error happened. [`Source::locate`] therefore re-reads the text with a probe
//! that walks to the value at a [`FieldPath`] and fails there on purpose; the failure carries the
//! line and column of the value.

use std::fmt;

use serde::de::{self, DeserializeSeed, IgnoredAny, MapAccess, SeqAccess, Visitor};

use crate::field_path::{FieldPath, Segment};

/// The syntax a definition was written in.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum SourceFormat {
    Yaml,
    Json,
}

/// Definition text with where it came from (a file path or a label such as `request body`).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Source {
    pub origin: String,
    pub text: String,
    pub format: SourceFormat,
}

/// A place in a source text; `line` and `column` are 1-based.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Location {
    pub origin: String,
    pub line: usize,
    pub column: usize,
}

impl fmt::Display for Location {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}:{}:{}", self.origin, self.line, self.column)
    }
}

/// The message the probe fails with; an error without it is not the probe's.
const MARKER: &str = "tradeloom-flow location probe";

impl Source {
    /// JSON if the text is syntactically JSON, YAML otherwise (JSON is nearly YAML, but the JSON
    /// parser gives exact positions and JSON semantics).
    pub fn detect(origin: &str, text: &str) -> Self {
        let is_json = serde_json::from_str::<IgnoredAny>(text).is_ok();
        Source {
            origin: origin.to_string(),
            text: text.to_string(),
            format: if is_json {
                SourceFormat::Json
            } else {
                SourceFormat::Yaml
            },
        }
    }

    /// Where the value at `path` starts, or where its nearest existing ancestor starts.
    pub fn locate(&self, path: &FieldPath) -> Option<Location> {
        let mut path = path.clone();
        loop {
            if let Some((line, column)) = self.probe(path.segments()) {
                return Some(Location {
                    origin: self.origin.clone(),
                    line,
                    column,
                });
            }
            if path.is_root() {
                return None;
            }
            path = path.parent();
        }
    }

    fn probe(&self, path: &[Segment]) -> Option<(usize, usize)> {
        match self.format {
            SourceFormat::Json => {
                let mut de = serde_json::Deserializer::from_str(&self.text);
                match (Probe { path }).deserialize(&mut de) {
                    Err(e) if e.to_string().contains(MARKER) => Some((e.line(), e.column())),
                    _ => None,
                }
            }
            SourceFormat::Yaml => {
                let de = yaml_serde::Deserializer::from_str(&self.text);
                match (Probe { path }).deserialize(de) {
                    Err(e) if e.to_string().contains(MARKER) => {
                        e.location().map(|l| (l.line(), l.column()))
                    }
                    _ => None,
                }
            }
        }
    }
}

/// Walks to `path` and fails on the value there; succeeds (consuming everything) if the path does
/// not exist.
struct Probe<'p> {
    path: &'p [Segment],
}

impl<'de> DeserializeSeed<'de> for Probe<'_> {
    type Value = ();

    fn deserialize<D: de::Deserializer<'de>>(self, deserializer: D) -> Result<(), D::Error> {
        match self.path.split_first() {
            // Every `visit_*` of `Target` keeps its default, which fails with `MARKER` in the
            // message; the deserialiser then stamps the error with the value's position.
            None => deserializer.deserialize_any(Target),
            Some((first, rest)) => deserializer.deserialize_any(Walk { first, rest }),
        }
    }
}

struct Target;

impl<'de> Visitor<'de> for Target {
    type Value = ();

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(MARKER)
    }
}

struct Walk<'p> {
    first: &'p Segment,
    rest: &'p [Segment],
}

impl<'de> Visitor<'de> for Walk<'_> {
    type Value = ();

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("any value")
    }

    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<(), A::Error> {
        while let Some(key) = map.next_key::<AnyKey>()? {
            match self.first {
                Segment::Key(wanted) if key.0.as_deref() == Some(wanted.as_str()) => {
                    map.next_value_seed(Probe { path: self.rest })?;
                }
                _ => {
                    map.next_value::<IgnoredAny>()?;
                }
            }
        }
        Ok(())
    }

    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<(), A::Error> {
        let mut index = 0;
        loop {
            let found = match self.first {
                Segment::Index(wanted) if *wanted == index => {
                    seq.next_element_seed(Probe { path: self.rest })?
                }
                _ => seq.next_element::<IgnoredAny>()?.map(|_| ()),
            };
            if found.is_none() {
                return Ok(());
            }
            index += 1;
        }
    }

    fn visit_bool<E: de::Error>(self, _: bool) -> Result<(), E> {
        Ok(())
    }
    fn visit_i64<E: de::Error>(self, _: i64) -> Result<(), E> {
        Ok(())
    }
    fn visit_u64<E: de::Error>(self, _: u64) -> Result<(), E> {
        Ok(())
    }
    fn visit_f64<E: de::Error>(self, _: f64) -> Result<(), E> {
        Ok(())
    }
    fn visit_str<E: de::Error>(self, _: &str) -> Result<(), E> {
        Ok(())
    }
    fn visit_unit<E: de::Error>(self) -> Result<(), E> {
        Ok(())
    }
    fn visit_none<E: de::Error>(self) -> Result<(), E> {
        Ok(())
    }
    fn visit_some<D: de::Deserializer<'de>>(self, d: D) -> Result<(), D::Error> {
        d.deserialize_any(self)
    }
}

/// A mapping key of any scalar type, as text (`None` for keys that are not scalars).
struct AnyKey(Option<String>);

impl<'de> de::Deserialize<'de> for AnyKey {
    fn deserialize<D: de::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct KeyVisitor;
        impl<'de> Visitor<'de> for KeyVisitor {
            type Value = AnyKey;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("a mapping key")
            }
            fn visit_str<E: de::Error>(self, v: &str) -> Result<AnyKey, E> {
                Ok(AnyKey(Some(v.to_string())))
            }
            fn visit_bool<E: de::Error>(self, v: bool) -> Result<AnyKey, E> {
                Ok(AnyKey(Some(v.to_string())))
            }
            fn visit_i64<E: de::Error>(self, v: i64) -> Result<AnyKey, E> {
                Ok(AnyKey(Some(v.to_string())))
            }
            fn visit_u64<E: de::Error>(self, v: u64) -> Result<AnyKey, E> {
                Ok(AnyKey(Some(v.to_string())))
            }
            fn visit_f64<E: de::Error>(self, v: f64) -> Result<AnyKey, E> {
                Ok(AnyKey(Some(v.to_string())))
            }
            fn visit_unit<E: de::Error>(self) -> Result<AnyKey, E> {
                Ok(AnyKey(None))
            }
            fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<AnyKey, A::Error> {
                while map.next_entry::<IgnoredAny, IgnoredAny>()?.is_some() {}
                Ok(AnyKey(None))
            }
            fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<AnyKey, A::Error> {
                while seq.next_element::<IgnoredAny>()?.is_some() {}
                Ok(AnyKey(None))
            }
        }
        d.deserialize_any(KeyVisitor)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn path(parts: &[Segment]) -> FieldPath {
        parts.iter().fold(FieldPath::root(), |p, s| match s {
            Segment::Key(k) => p.key(k),
            Segment::Index(i) => p.index(*i),
        })
    }

    #[test]
    fn finds_values_in_yaml_block_and_flow_style() {
        let text = "name: x\nnodes:\n  - {id: a, type: wait}\n  - id: b\n    needs:\n      - a\n      - c\n";
        let src = Source::detect("wf.yaml", text);
        assert_eq!(src.format, SourceFormat::Yaml);
        let k = |s: &str| Segment::Key(s.to_string());
        let at = |p: &[Segment]| src.locate(&path(p)).map(|l| (l.line, l.column));
        assert_eq!(at(&[k("name")]), Some((1, 7)));
        assert_eq!(
            at(&[k("nodes"), Segment::Index(0), k("type")]),
            Some((3, 19))
        );
        assert_eq!(
            at(&[k("nodes"), Segment::Index(1), k("needs"), Segment::Index(1)]),
            Some((7, 9))
        );
        // A missing field falls back to its parent.
        assert_eq!(
            at(&[k("nodes"), Segment::Index(1), k("config")]).map(|p| p.0),
            Some(4)
        );
    }

    #[test]
    fn finds_values_in_json() {
        let text = "{\n  \"name\": \"x\",\n  \"nodes\": [\n    {\"id\": \"a\"},\n    {\"id\": \"b\"}\n  ]\n}";
        let src = Source::detect("wf.json", text);
        assert_eq!(src.format, SourceFormat::Json);
        let k = |s: &str| Segment::Key(s.to_string());
        let line = |p: &[Segment]| src.locate(&path(p)).map(|l| l.line);
        assert_eq!(line(&[k("name")]), Some(2));
        assert_eq!(line(&[k("nodes"), Segment::Index(1), k("id")]), Some(5));
        assert_eq!(line(&[k("nodes"), Segment::Index(1)]), Some(5));
    }
}
