//! [`FieldPath`]: where in a definition document a value sits, written the way users read it
//! (`nodes[3].needs[1]`, `nodes[0].config.headers["x y"]`).

use std::fmt;

/// One step of a [`FieldPath`].
#[derive(Clone, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Segment {
    /// A mapping key.
    Key(String),
    /// A sequence index (0-based).
    Index(usize),
}

/// A path from the document root to a value. The empty path is the root and displays as `.`.
#[derive(Clone, Debug, Default, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct FieldPath {
    segments: Vec<Segment>,
}

impl FieldPath {
    /// The document root.
    pub fn root() -> Self {
        Self::default()
    }

    /// This path extended by a key.
    pub fn key(&self, key: &str) -> Self {
        let mut next = self.clone();
        next.segments.push(Segment::Key(key.to_string()));
        next
    }

    /// This path extended by an index.
    pub fn index(&self, index: usize) -> Self {
        let mut next = self.clone();
        next.segments.push(Segment::Index(index));
        next
    }

    /// This path followed by `suffix`.
    pub fn join(&self, suffix: &FieldPath) -> Self {
        let mut next = self.clone();
        next.segments.extend(suffix.segments.iter().cloned());
        next
    }

    /// The steps from the root.
    pub fn segments(&self) -> &[Segment] {
        &self.segments
    }

    /// The path without its last step (the root stays the root).
    pub fn parent(&self) -> Self {
        let mut next = self.clone();
        next.segments.pop();
        next
    }

    pub fn is_root(&self) -> bool {
        self.segments.is_empty()
    }
}

/// Whether `key` can be written after a dot; other keys are written as `["..."]`.
fn is_plain_key(key: &str) -> bool {
    !key.is_empty()
        && key
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || c == '_' || c == '-')
}

impl fmt::Display for FieldPath {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.segments.is_empty() {
            return f.write_str(".");
        }
        for (i, segment) in self.segments.iter().enumerate() {
            match segment {
                Segment::Key(key) if is_plain_key(key) => {
                    if i > 0 {
                        f.write_str(".")?;
                    }
                    f.write_str(key)?;
                }
                Segment::Key(key) => {
                    let quoted = serde_json::Value::String(key.clone()).to_string();
                    write!(f, "[{quoted}]")?;
                }
                Segment::Index(index) => write!(f, "[{index}]")?,
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn displays_like_the_documents_read() {
        assert_eq!(FieldPath::root().to_string(), ".");
        let p = FieldPath::root()
            .key("nodes")
            .index(3)
            .key("needs")
            .index(1);
        assert_eq!(p.to_string(), "nodes[3].needs[1]");
        let h = FieldPath::root().key("headers").key("x y");
        assert_eq!(h.to_string(), "headers[\"x y\"]");
        assert_eq!(p.parent().to_string(), "nodes[3].needs");
    }
}
