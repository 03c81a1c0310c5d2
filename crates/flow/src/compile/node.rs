//! The per-node checks: timeout, retries, templates, `when` and what they read.

use std::collections::{BTreeMap, HashMap};

use serde_json::Value;

use super::compiler::{Compiler, IndirectRead, NodeParts};
use super::graph::{Condensation, reaches};
use super::names::{check_input_name, suggestion};
use crate::context::RUN_FIELDS;

use crate::definition::RetrySpec;

use crate::error::CompileErrorKind as Kind;
use crate::field_path::{FieldPath, Segment};
use crate::ir::RetryPolicy;
use crate::limits::{MAX_ATTEMPTS, MAX_BACKOFF_MS, MAX_TIMEOUT_MS, MIN_BACKOFF_MS, describe_ms};

use crate::predicate::Predicate;
use crate::template::{JsonTemplate, Template};
use crate::value_path::ValuePath;

impl<'d> Compiler<'d> {
    pub(super) fn check_node(
        &mut self,
        i: usize,
        index: &HashMap<&str, usize>,
        direct: &[usize],
    ) -> NodeParts {
        let node = &self.def.nodes[i];
        let at = FieldPath::root().key("nodes").index(i);
        let scope = Scope {
            node: i,
            index,
            direct,
        };
        let retry = self.retry_policy(&node.id, node.retries.as_ref(), &at.key("retries"));
        match node.timeout_ms {
            Some(0) => self.error(
                Kind::Config,
                at.key("timeout_ms"),
                "must be more than zero (omit it for no time limit)",
            ),
            Some(ms) if ms > MAX_TIMEOUT_MS => self.error(
                Kind::Duration,
                at.key("timeout_ms"),
                format!(
                    "node `{}`: {ms} ms is more than the maximum of {}",
                    node.id,
                    describe_ms(MAX_TIMEOUT_MS)
                ),
            ),
            _ => {}
        }
        let when = node.when.as_ref().and_then(|text| {
            let path = at.key("when");
            if !self.fits_template_limit(&node.id, text, &path) {
                return None;
            }
            match Predicate::parse(text) {
                Ok(p) => {
                    self.check_references(&scope, p.references(), &path);
                    Some(p)
                }
                Err(e) => {
                    self.error(Kind::Predicate, path, e.to_string());
                    None
                }
            }
        });
        let mut inputs = BTreeMap::new();
        for (name, text) in &node.inputs {
            let path = at.key("inputs").key(name);
            if let Some(problem) = check_input_name(name) {
                self.error(Kind::InvalidName, path.clone(), problem);
            }
            if let Some(t) = self.template(&scope, text, &path) {
                inputs.insert(name.clone(), t);
            }
        }
        let kind = self.node_kind(&scope, node, &at);
        NodeParts {
            when,
            kind,
            retry,
            inputs,
        }
    }

    pub(super) fn retry_policy(
        &mut self,
        id: &str,
        spec: Option<&RetrySpec>,
        at: &FieldPath,
    ) -> RetryPolicy {
        let mut policy = RetryPolicy::default();
        let Some(spec) = spec else {
            return policy;
        };
        if let Some(n) = spec.max_attempts {
            if n == 0 {
                self.error(
                    Kind::Config,
                    at.key("max_attempts"),
                    "must be at least 1 (1 means no retry)",
                );
            } else if n > MAX_ATTEMPTS {
                self.error(
                    Kind::Config,
                    at.key("max_attempts"),
                    format!("node `{id}`: {n} attempts is more than the maximum of {MAX_ATTEMPTS}"),
                );
            }
            policy.max_attempts = n;
        }
        if let Some(ms) = spec.backoff_ms {
            self.check_backoff(id, ms, &at.key("backoff_ms"));
            policy.backoff_ms = ms;
        }
        if let Some(m) = spec.backoff_multiplier {
            if !(m.is_finite() && m >= 1.0) {
                self.error(
                    Kind::Config,
                    at.key("backoff_multiplier"),
                    format!("{m} must be a number of at least 1.0"),
                );
            }
            policy.backoff_multiplier = m;
        }
        if let Some(cap) = spec.max_backoff_ms {
            if !self.check_backoff(id, cap, &at.key("max_backoff_ms")) {
                // Reported already.
            } else if cap < policy.backoff_ms {
                self.error(
                    Kind::Config,
                    at.key("max_backoff_ms"),
                    format!("{cap} is below backoff_ms ({})", policy.backoff_ms),
                );
            }
            policy.max_backoff_ms = Some(cap);
        }
        policy
    }

    /// Whether a back-off is within [`MIN_BACKOFF_MS`]..=[`MAX_BACKOFF_MS`]; reports it if not.
    pub(super) fn check_backoff(&mut self, id: &str, ms: u64, at: &FieldPath) -> bool {
        if ms < MIN_BACKOFF_MS {
            self.error(
                Kind::Duration,
                at.clone(),
                format!(
                    "node `{id}`: {ms} ms is less than the minimum of {}",
                    describe_ms(MIN_BACKOFF_MS)
                ),
            );
            return false;
        }
        if ms > MAX_BACKOFF_MS {
            self.error(
                Kind::Duration,
                at.clone(),
                format!(
                    "node `{id}`: {ms} ms is more than the maximum of {}",
                    describe_ms(MAX_BACKOFF_MS)
                ),
            );
            return false;
        }
        true
    }

    /// Whether a template or predicate is within `max_template_bytes`; reports it if not.
    pub(super) fn fits_template_limit(&mut self, id: &str, text: &str, at: &FieldPath) -> bool {
        let max = self.limits.max_template_bytes;
        if text.len() <= max {
            return true;
        }
        self.error(
            Kind::Limit,
            at.clone(),
            format!(
                "node `{id}`: {} bytes, over the limit max_template_bytes ({max})",
                text.len()
            ),
        );
        false
    }

    /// Parses a template and checks what it reads.
    pub(super) fn template(
        &mut self,
        scope: &Scope<'_>,
        text: &str,
        at: &FieldPath,
    ) -> Option<Template> {
        let id = &self.def.nodes[scope.node].id;
        if !self.fits_template_limit(id, text, at) {
            return None;
        }
        match Template::parse(text) {
            Ok(t) => {
                self.check_references(scope, t.references(), at);
                Some(t)
            }
            Err(e) => {
                self.error(Kind::Template, at.clone(), e.to_string());
                None
            }
        }
    }

    /// Parses the templates in a JSON value and checks what they read.
    pub(super) fn json_template(
        &mut self,
        scope: &Scope<'_>,
        value: &Value,
        at: &FieldPath,
    ) -> Option<JsonTemplate> {
        let mut long = Vec::new();
        long_strings(value, at, self.limits.max_template_bytes, &mut long);
        if !long.is_empty() {
            let id = &self.def.nodes[scope.node].id;
            for (path, text) in long {
                self.fits_template_limit(id, text, &path);
            }
            return None;
        }
        match JsonTemplate::parse(value) {
            Ok(t) => {
                for (relative, template) in t.templates() {
                    self.check_references(scope, template.references(), &at.join(&relative));
                }
                Some(t)
            }
            Err(errors) => {
                for (relative, e) in errors {
                    self.error(Kind::Template, at.join(&relative), e.to_string());
                }
                None
            }
        }
    }

    pub(super) fn check_references<'p>(
        &mut self,
        scope: &Scope<'_>,
        paths: impl IntoIterator<Item = &'p ValuePath>,
        at: &FieldPath,
    ) {
        let def = self.def;
        let me = &def.nodes[scope.node].id;
        for path in paths {
            match path.root() {
                "inputs" => match path.rest().first() {
                    None => {}
                    Some(Segment::Key(name)) if def.inputs.contains_key(name) => {}
                    Some(Segment::Key(name)) => self.error(
                        Kind::UndeclaredInput,
                        at.clone(),
                        format!(
                            "`{path}` reads input `{name}`, which is not declared; declare it under the top-level `inputs` (e.g. `inputs: {{{name}: {{}}}}`)"
                        ),
                    ),
                    Some(Segment::Index(_)) => self.error(
                        Kind::UndeclaredInput,
                        at.clone(),
                        format!("`{path}`: `inputs` is an object; write `inputs.<name>`"),
                    ),
                },
                "run" => match path.rest().first() {
                    None => {}
                    Some(Segment::Key(field)) if RUN_FIELDS.contains(&field.as_str()) => {}
                    Some(_) => self.error(
                        Kind::UndeclaredInput,
                        at.clone(),
                        format!(
                            "`{path}` reads an unknown run field; `run` has {}",
                            RUN_FIELDS.join(", ")
                        ),
                    ),
                },
                root => match scope.index.get(root) {
                    None => {
                        let hint = if self.errors_full() {
                            String::new()
                        } else {
                            let ids: Vec<&str> = def.nodes.iter().map(|n| n.id.as_str()).collect();
                            suggestion(root, &ids)
                        };
                        self.error(
                            Kind::UnknownReference,
                            at.clone(),
                            format!("`{path}` reads unknown node `{root}`{hint}"),
                        );
                    }
                    Some(&k) if k == scope.node => self.error(
                        Kind::UnknownReference,
                        at.clone(),
                        format!("`{path}` reads the output of `{me}` itself"),
                    ),
                    Some(&k) if scope.direct[k] == scope.node + 1 => {}
                    Some(&k) => {
                        let seq = self.take_seq();
                        self.pending.push(IndirectRead {
                            seq,
                            node: scope.node,
                        target: k,
                            read: path.to_string(),
                            at: at.clone(),
                        });
                    }
                },
            }
        }
    }

    /// Reports reads of nodes that are not among the reader's transitive needs.
    pub(super) fn check_indirect_reads(&mut self, deps: &[Vec<usize>], components: &Condensation) {
        let pending = std::mem::take(&mut self.pending);
        let pairs: Vec<(usize, usize)> = pending.iter().map(|p| (p.node, p.target)).collect();
        let found = reaches(deps, components, &pairs);
        for (read, ok) in pending.into_iter().zip(found) {
            if ok {
                continue;
            }
            let me = &self.def.nodes[read.node].id;
            let root = &self.def.nodes[read.target].id;
            self.error_in_order(
                read.seq,
                Kind::UnknownReference,
                read.at,
                format!(
                    "`{}` reads node `{root}`, which is not among the needs of `{me}` (directly or through other needs); add `{root}` to its `needs`",
                    read.read
                ),
            );
        }
    }
}

/// What a node's templates may read.
pub(super) struct Scope<'s> {
    pub(super) node: usize,
    pub(super) index: &'s HashMap<&'s str, usize>,
    /// `direct[k] == node + 1` when `k` is among the node's needs.
    pub(super) direct: &'s [usize],
}

/// Every string longer than `max` bytes in a JSON value, with its path.
pub(super) fn long_strings<'v>(
    value: &'v Value,
    at: &FieldPath,
    max: usize,
    out: &mut Vec<(FieldPath, &'v str)>,
) {
    match value {
        Value::String(s) if s.len() > max => out.push((at.clone(), s)),
        Value::Array(items) => {
            for (i, item) in items.iter().enumerate() {
                long_strings(item, &at.index(i), max, out);
            }
        }
        Value::Object(map) => {
            for (k, v) in map {
                long_strings(v, &at.key(k), max, out);
            }
        }
        _ => {}
    }
}
