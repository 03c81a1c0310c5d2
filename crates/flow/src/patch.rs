//! JSON Patch (RFC 6902) on definition documents, and the rules a patch to a *running* workflow
//! must follow ([`validate_patch`]).
//!
//! Patches address the JSON form of a definition ([`Definition::to_json_value`]), e.g.
//! `[{"op": "add", "path": "/nodes/-", "value": {"id": "extra", "type": "wait", "needs": ["a"],
//! "config": {"duration_ms": 100}}}]`. Application is atomic: either every operation applies or
//! the document is unchanged.

use std::collections::{BTreeSet, HashMap};
use std::fmt;

use serde::{Deserialize, Serialize};
use serde_json::Value;

use crate::compile::{Compiled, compile_with};
use crate::definition::{Definition, NodeDef, NodeType, from_json_value};
use crate::limits::{FlowLimits, json_size};
use crate::predicate::json_equal;

/// One RFC 6902 operation. Unrecognised members are ignored, as the RFC requires.
#[derive(Clone, Debug, PartialEq, Deserialize, Serialize)]
#[serde(tag = "op", rename_all = "lowercase")]
pub enum PatchOp {
    Add { path: String, value: Value },
    Remove { path: String },
    Replace { path: String, value: Value },
    Move { from: String, path: String },
    Copy { from: String, path: String },
    Test { path: String, value: Value },
}

impl PatchOp {
    fn name(&self) -> &'static str {
        match self {
            PatchOp::Add { .. } => "add",
            PatchOp::Remove { .. } => "remove",
            PatchOp::Replace { .. } => "replace",
            PatchOp::Move { .. } => "move",
            PatchOp::Copy { .. } => "copy",
            PatchOp::Test { .. } => "test",
        }
    }
}

/// A patch that cannot be read or applied.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum PatchError {
    /// Not a JSON Patch document.
    #[error("invalid JSON patch: {0}")]
    Invalid(String),
    /// Operation `index` (0-based) failed; nothing was applied.
    #[error("patch operation {index} ({op}): {message}")]
    Failed {
        index: usize,
        op: &'static str,
        message: String,
    },
}

/// Why one patch operation cannot apply (shown after `patch operation <n> (<op>): `).
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum PointerError {
    /// Not an RFC 6901 pointer.
    #[error("pointer `{0}` must be empty or start with `/`")]
    NoLeadingSlash(String),
    /// A `~` not followed by `0` or `1`.
    #[error("pointer `{0}`: `~` must be followed by 0 or 1")]
    BadEscape(String),
    /// `-` where an existing element is needed.
    #[error("`-` (past the end) names no element")]
    PastTheEnd,
    /// A token that is not an array index.
    #[error("`{0}` is not an array index")]
    NotAnIndex(String),
    /// An index beyond the array.
    #[error("index {index} is out of bounds (the array has {len} element(s))")]
    OutOfBounds { index: usize, len: usize },
    /// Nothing at this pointer.
    #[error("`{0}` does not exist")]
    Missing(String),
    /// `add` where the parent cannot take a member.
    #[error("cannot add at `{path}`: {problem}")]
    CannotAdd {
        path: String,
        problem: Box<PointerError>,
    },
    /// `add` under a parent that is a scalar.
    #[error("the parent is neither an object nor an array")]
    ScalarParent,
    /// `remove` of the root.
    #[error("cannot remove the whole document")]
    RemoveRoot,
    /// `move` into a child of the moved value.
    #[error("cannot move `{from}` into its own child `{path}`")]
    MoveIntoChild { from: String, path: String },
    /// A `test` that failed.
    #[error("`{path}` is {actual}, not {expected}")]
    TestFailed {
        path: String,
        actual: String,
        expected: String,
    },
}

/// Reads a patch document (a JSON array of operations) from text.
pub fn parse_patch(text: &str) -> Result<Vec<PatchOp>, PatchError> {
    serde_json::from_str(text).map_err(|e| PatchError::Invalid(e.to_string()))
}

/// Reads a patch document from JSON (an API request body).
pub fn patch_from_value(value: &Value) -> Result<Vec<PatchOp>, PatchError> {
    serde_path_to_error::deserialize::<_, Vec<PatchOp>>(value)
        .map_err(|e| PatchError::Invalid(format!("{}: {}", e.path(), e.inner())))
}

/// An RFC 6901 JSON Pointer: `""` is the whole document, `/a/0/b~1c` is
/// `["a", "0", "b/c"]` (`~1` is `/`, `~0` is `~`).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct JsonPointer {
    tokens: Vec<String>,
}

impl JsonPointer {
    pub fn parse(text: &str) -> Result<JsonPointer, PointerError> {
        if text.is_empty() {
            return Ok(JsonPointer { tokens: Vec::new() });
        }
        let Some(rest) = text.strip_prefix('/') else {
            return Err(PointerError::NoLeadingSlash(text.to_string()));
        };
        let tokens = rest
            .split('/')
            .map(|raw| {
                let mut token = String::with_capacity(raw.len());
                let mut chars = raw.chars();
                while let Some(c) = chars.next() {
                    if c == '~' {
                        match chars.next() {
                            Some('0') => token.push('~'),
                            Some('1') => token.push('/'),
                            _ => {
                                return Err(PointerError::BadEscape(text.to_string()));
                            }
                        }
                    } else {
                        token.push(c);
                    }
                }
                Ok(token)
            })
            .collect::<Result<_, _>>()?;
        Ok(JsonPointer { tokens })
    }

    pub fn tokens(&self) -> &[String] {
        &self.tokens
    }

    fn is_root(&self) -> bool {
        self.tokens.is_empty()
    }

    fn parent(&self) -> &[String] {
        &self.tokens[..self.tokens.len().saturating_sub(1)]
    }

    fn last(&self) -> &str {
        self.tokens.last().map_or("", String::as_str)
    }
}

impl fmt::Display for JsonPointer {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for t in &self.tokens {
            write!(f, "/{}", t.replace('~', "~0").replace('/', "~1"))?;
        }
        Ok(())
    }
}

/// An array index token: digits without leading zeros, below `len` (or equal to it, or `-`,
/// when `appending`).
fn array_index(token: &str, len: usize, appending: bool) -> Result<usize, PointerError> {
    if token == "-" {
        return if appending {
            Ok(len)
        } else {
            Err(PointerError::PastTheEnd)
        };
    }
    let well_formed = !token.is_empty()
        && token.chars().all(|c| c.is_ascii_digit())
        && (token == "0" || !token.starts_with('0'));
    let index: usize = match token.parse() {
        Ok(i) if well_formed => i,
        _ => return Err(PointerError::NotAnIndex(token.to_string())),
    };
    let limit = if appending {
        len
    } else {
        len.saturating_sub(1)
    };
    if index > limit || (!appending && len == 0) {
        return Err(PointerError::OutOfBounds { index, len });
    }
    Ok(index)
}

fn get<'v>(doc: &'v Value, tokens: &[String]) -> Result<&'v Value, PointerError> {
    let mut current = doc;
    for (depth, token) in tokens.iter().enumerate() {
        let missing = || {
            let at = JsonPointer {
                tokens: tokens[..=depth].to_vec(),
            };
            PointerError::Missing(at.to_string())
        };
        current = match current {
            Value::Object(map) => map.get(token).ok_or_else(missing)?,
            Value::Array(items) => {
                let i = array_index(token, items.len(), false).map_err(|_| missing())?;
                &items[i]
            }
            _ => return Err(missing()),
        };
    }
    Ok(current)
}

fn get_mut<'v>(doc: &'v mut Value, tokens: &[String]) -> Result<&'v mut Value, PointerError> {
    let mut current = doc;
    for (depth, token) in tokens.iter().enumerate() {
        // Built only on failure: building it at every step would cost depth² per pointer.
        let missing = || {
            let at = JsonPointer {
                tokens: tokens[..=depth].to_vec(),
            };
            PointerError::Missing(at.to_string())
        };
        current = match current {
            Value::Object(map) => map.get_mut(token).ok_or_else(missing)?,
            Value::Array(items) => {
                let i = array_index(token, items.len(), false).map_err(|_| missing())?;
                &mut items[i]
            }
            _ => return Err(missing()),
        };
    }
    Ok(current)
}

fn add(doc: &mut Value, path: &JsonPointer, value: Value) -> Result<(), PointerError> {
    if path.is_root() {
        *doc = value;
        return Ok(());
    }
    let cannot_add = |problem| PointerError::CannotAdd {
        path: path.to_string(),
        problem: Box::new(problem),
    };
    let parent = get_mut(doc, path.parent()).map_err(cannot_add)?;
    match parent {
        Value::Object(map) => {
            map.insert(path.last().to_string(), value);
        }
        Value::Array(items) => {
            let i = array_index(path.last(), items.len(), true).map_err(cannot_add)?;
            items.insert(i, value);
        }
        _ => {
            return Err(cannot_add(PointerError::ScalarParent));
        }
    }
    Ok(())
}

fn remove(doc: &mut Value, path: &JsonPointer) -> Result<Value, PointerError> {
    if path.is_root() {
        return Err(PointerError::RemoveRoot);
    }
    let missing = || PointerError::Missing(path.to_string());
    match get_mut(doc, path.parent()).map_err(|_| missing())? {
        Value::Object(map) => map.remove(path.last()).ok_or_else(missing),
        Value::Array(items) => {
            let i = array_index(path.last(), items.len(), false).map_err(|_| missing())?;
            Ok(items.remove(i))
        }
        _ => Err(missing()),
    }
}

fn apply_one(doc: &mut Value, op: &PatchOp) -> Result<(), PointerError> {
    let pointer = |text: &str| JsonPointer::parse(text);
    match op {
        PatchOp::Add { path, value } => add(doc, &pointer(path)?, value.clone()),
        PatchOp::Remove { path } => remove(doc, &pointer(path)?).map(drop),
        PatchOp::Replace { path, value } => {
            let target = get_mut(doc, pointer(path)?.tokens())?;
            *target = value.clone();
            Ok(())
        }
        PatchOp::Move { from, path } => {
            let (from, path) = (pointer(from)?, pointer(path)?);
            if from == path {
                return get(doc, from.tokens()).map(drop);
            }
            if path.tokens().starts_with(from.tokens()) {
                return Err(PointerError::MoveIntoChild {
                    from: from.to_string(),
                    path: path.to_string(),
                });
            }
            let value = remove(doc, &from)?;
            add(doc, &path, value)
        }
        PatchOp::Copy { from, path } => {
            let value = get(doc, pointer(from)?.tokens())?.clone();
            add(doc, &pointer(path)?, value)
        }
        PatchOp::Test { path, value } => {
            let path = pointer(path)?;
            let actual = get(doc, path.tokens())?;
            if json_equal(actual, value) {
                Ok(())
            } else {
                Err(PointerError::TestFailed {
                    path: path.to_string(),
                    actual: actual.to_string(),
                    expected: value.to_string(),
                })
            }
        }
    }
}

/// Applies `ops` in order to a copy of `doc`; on any failure, returns which operation failed and
/// why (and `doc` is, as the RFC requires, unaffected).
pub fn apply_patch(doc: &Value, ops: &[PatchOp]) -> Result<Value, PatchError> {
    let mut patched = doc.clone();
    for (index, op) in ops.iter().enumerate() {
        apply_one(&mut patched, op).map_err(|e| PatchError::Failed {
            index,
            op: op.name(),
            message: e.to_string(),
        })?;
    }
    Ok(patched)
}

/// What the coordinator knows about a running workflow when a patch arrives.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct RunState {
    /// Ids of nodes that have completed; they may be neither removed nor changed.
    pub completed: BTreeSet<String>,
    /// Patches the run has accepted so far.
    pub patch_depth: u32,
    /// Agent nodes the run has had so far: those of the initial definition plus every one added
    /// by an accepted patch ([`added_agent_nodes`]), removed ones included.
    pub agent_nodes_spawned: u32,
}

/// Agent nodes in `patched` that were not agent nodes (by id) in `current`.
pub fn added_agent_nodes(current: &Definition, patched: &Definition) -> usize {
    let before: BTreeSet<&str> = current
        .nodes
        .iter()
        .filter(|n| n.node_type == NodeType::Agent)
        .map(|n| n.id.as_str())
        .collect();
    patched
        .nodes
        .iter()
        .filter(|n| n.node_type == NodeType::Agent && !before.contains(n.id.as_str()))
        .count()
}

/// What a patch may not do to orders: add or change an `order` node, or change or remove a
/// `hitl` node an `order` node needs (directly or through other nodes). An order executes only
/// as the stored definition says, behind the approvals it was written behind; a patch (an
/// agent's above all) may remove an order node, never create or redirect one.
fn order_guard(
    current: &Definition,
    patched: &Definition,
    before_by_id: &HashMap<&str, &NodeDef>,
    after_by_id: &HashMap<&str, &NodeDef>,
) -> Vec<String> {
    let mut reasons = Vec::new();
    for (i, node) in patched.nodes.iter().enumerate() {
        if node.node_type != NodeType::Order {
            continue;
        }
        match before_by_id.get(node.id.as_str()) {
            Some(before) if *before == node => {}
            Some(_) => reasons.push(format!(
                "nodes[{i}]: node `{}` is an order node; a patch may not change it",
                node.id
            )),
            None => reasons.push(format!(
                "nodes[{i}]: node `{}` is an order node; a patch may not add one (orders come from the stored definition)",
                node.id
            )),
        }
    }
    // The approvals guarding the current definition's orders.
    let mut guarding: BTreeSet<&str> = BTreeSet::new();
    let mut stack: Vec<&str> = current
        .nodes
        .iter()
        .filter(|n| n.node_type == NodeType::Order)
        .flat_map(|n| n.needs.iter().map(String::as_str))
        .collect();
    let mut seen: BTreeSet<&str> = BTreeSet::new();
    while let Some(id) = stack.pop() {
        if !seen.insert(id) {
            continue;
        }
        if let Some(node) = before_by_id.get(id) {
            if node.node_type == NodeType::Hitl {
                guarding.insert(id);
            }
            stack.extend(node.needs.iter().map(String::as_str));
        }
    }
    for id in guarding {
        match after_by_id.get(id) {
            Some(after) if before_by_id.get(id) == Some(after) => {}
            _ => reasons.push(format!(
                "node `{id}` is an approval an order node needs; a patch may not change or remove it"
            )),
        }
    }
    reasons
}

/// Nodes by id, the first of each id winning (ids are unique in a definition that compiles).
fn by_id(definition: &Definition) -> HashMap<&str, &NodeDef> {
    let mut map = HashMap::with_capacity(definition.nodes.len());
    for n in definition.nodes.iter().rev() {
        map.insert(n.id.as_str(), n);
    }
    map
}

/// A patch that passed [`validate_patch_with`]: the new definition, compiled.
#[derive(Clone, Debug, PartialEq)]
pub struct Patched {
    pub definition: Definition,
    pub compiled: Compiled,
}

/// [`validate_patch_with`] within the default [`FlowLimits`], returning the new definition.
pub fn validate_patch(
    current: &Definition,
    patch: &[PatchOp],
    state: &RunState,
) -> Result<Definition, Vec<String>> {
    validate_patch_with(current, patch, state, &FlowLimits::DEFAULT).map(|p| p.definition)
}

/// Applies `patch` to the definition of a running workflow and checks the result; returns the
/// new definition compiled within `limits`, or every reason to refuse it:
///
/// - the patch has more than `max_patch_operations` operations or more than `max_patch_bytes`
///   bytes as compact JSON (then nothing else is checked and nothing is applied);
/// - the run has reached `limits.max_patch_depth` accepted patches;
/// - the patch does not apply, or its result is not a valid definition (shape or any compile
///   error, cycles included);
/// - it changes `limits`;
/// - it removes or changes a completed node (completed nodes are immutable);
/// - it introduces a node of an unknown type;
/// - it adds agent nodes beyond `limits.max_agent_nodes` for the run
///   (`agent_nodes_spawned + added > max`);
/// - it adds or changes an `order` node, or changes or removes a `hitl` node an `order` node
///   needs (directly or transitively).
///
/// The limits applied are the current definition's. When the patch does not apply or its result
/// does not parse, the reasons stop there (nothing else can be checked).
pub fn validate_patch_with(
    current: &Definition,
    patch: &[PatchOp],
    state: &RunState,
    flow_limits: &FlowLimits,
) -> Result<Patched, Vec<String>> {
    let limits = current.limits;
    let mut reasons = Vec::new();
    if patch.len() > flow_limits.max_patch_operations {
        reasons.push(format!(
            "the patch has {} operations, over the limit max_patch_operations ({})",
            patch.len(),
            flow_limits.max_patch_operations
        ));
    }
    let bytes = json_size(patch);
    if bytes > flow_limits.max_patch_bytes {
        reasons.push(format!(
            "the patch is {bytes} bytes as compact JSON, over the limit max_patch_bytes ({})",
            flow_limits.max_patch_bytes
        ));
    }
    if !reasons.is_empty() {
        return Err(reasons);
    }
    if state.patch_depth >= limits.max_patch_depth {
        reasons.push(format!(
            "the run has accepted {} patch(es), the most limits.max_patch_depth ({}) allows",
            state.patch_depth, limits.max_patch_depth
        ));
    }
    let document = match apply_patch(&current.to_json_value(), patch) {
        Ok(d) => d,
        Err(e) => {
            reasons.push(e.to_string());
            return Err(reasons);
        }
    };
    let patched = match from_json_value(&document) {
        Ok(d) => d,
        Err(e) => {
            reasons.push(format!("the patched definition is invalid: {e}"));
            return Err(reasons);
        }
    };
    if patched.limits != limits {
        reasons.push("a patch may not change `limits`".to_string());
    }
    let (before_by_id, after_by_id) = (by_id(current), by_id(&patched));
    for id in &state.completed {
        let Some(&before) = before_by_id.get(id.as_str()) else {
            continue;
        };
        match after_by_id.get(id.as_str()).copied() {
            None => reasons.push(format!("node `{id}` has completed and may not be removed")),
            Some(after) if after != before => {
                reasons.push(format!("node `{id}` has completed and may not be changed"))
            }
            Some(_) => {}
        }
    }
    for (i, node) in patched.nodes.iter().enumerate() {
        let unchanged = before_by_id.get(node.id.as_str()) == Some(&node);
        if !node.node_type.is_known() && !unchanged {
            reasons.push(format!(
                "nodes[{i}]: node `{}` has unknown type `{}`; a patch may not introduce unknown node types (known: {})",
                node.id,
                node.node_type,
                NodeType::KNOWN.join(", ")
            ));
        }
    }
    reasons.extend(order_guard(current, &patched, &before_by_id, &after_by_id));
    let added = added_agent_nodes(current, &patched);
    let total = state.agent_nodes_spawned as usize + added;
    if added > 0 && total > limits.max_agent_nodes as usize {
        reasons.push(format!(
            "the patch adds {added} agent node(s) to the {} this run has had; limits.max_agent_nodes is {}",
            state.agent_nodes_spawned, limits.max_agent_nodes
        ));
    }
    match compile_with(&patched, flow_limits) {
        Ok(compiled) if reasons.is_empty() => Ok(Patched {
            definition: patched,
            compiled,
        }),
        Ok(_) => Err(reasons),
        Err(errors) => {
            reasons.extend(errors.iter().map(ToString::to_string));
            Err(reasons)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pointers_unescape_in_the_rfc_order() {
        let p = JsonPointer::parse("/a~1b/~01/0").unwrap();
        assert_eq!(p.tokens(), ["a/b", "~1", "0"]);
        assert_eq!(p.to_string(), "/a~1b/~01/0");
        assert!(JsonPointer::parse("a").is_err());
        assert!(JsonPointer::parse("/a~2").is_err());
        assert_eq!(JsonPointer::parse("").unwrap().tokens().len(), 0);
    }

    #[test]
    fn array_indices_are_strict() {
        assert_eq!(array_index("0", 2, false), Ok(0));
        assert_eq!(array_index("2", 2, true), Ok(2));
        assert_eq!(array_index("-", 2, true), Ok(2));
        assert!(array_index("2", 2, false).is_err());
        assert!(array_index("01", 2, false).is_err());
        assert!(array_index("-", 2, false).is_err());
        assert!(array_index("0", 0, false).is_err());
        assert!(array_index("+1", 2, false).is_err());
    }
}
