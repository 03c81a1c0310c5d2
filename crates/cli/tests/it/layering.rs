//! The layering of the workspace: every crate's `tradeloom-*` dependencies (`[dependencies]`,
//! including target-specific and build ones; dev-dependencies are free) must be listed in its row
//! of the table in `docs/src/layers.md`, every listed crate must sit in a lower layer, and the
//! dependencies must not form a cycle.

use std::collections::{BTreeMap, BTreeSet};
use std::path::Path;

use crate::repo;

const TABLE: &str = "docs/src/layers.md";
const BEGIN: &str = "<!-- layers:begin -->";
const END: &str = "<!-- layers:end -->";

/// One row of the table: the crate's layer and the crates it may depend on.
#[derive(Debug)]
struct Row {
    layer: u32,
    may_depend_on: BTreeSet<String>,
}

/// Reads the rows between the markers; an error names the line that cannot be read.
fn parse_table(text: &str) -> Result<BTreeMap<String, Row>, String> {
    let start = text
        .find(BEGIN)
        .ok_or_else(|| format!("{TABLE}: no `{BEGIN}` marker"))?;
    let end = text
        .find(END)
        .ok_or_else(|| format!("{TABLE}: no `{END}` marker"))?;
    if end < start {
        return Err(format!("{TABLE}: `{END}` comes before `{BEGIN}`"));
    }
    let first_line = text[..start].lines().count() + 1;
    let mut rows = BTreeMap::new();
    for (i, line) in text[start + BEGIN.len()..end].lines().enumerate() {
        let line_no = first_line + i;
        let line = line.trim();
        if line.is_empty() {
            continue;
        }
        let cells: Vec<&str> = line
            .strip_prefix('|')
            .and_then(|l| l.strip_suffix('|'))
            .ok_or_else(|| format!("{TABLE}:{line_no}: not a table row: `{line}`"))?
            .split('|')
            .map(str::trim)
            .collect();
        if cells.len() != 3 {
            return Err(format!(
                "{TABLE}:{line_no}: expected 3 cells (layer, crate, may depend on), found {}",
                cells.len()
            ));
        }
        if cells[0] == "layer" || cells[0].starts_with("---") {
            continue;
        }
        let layer = cells[0].parse::<u32>().map_err(|_| {
            format!(
                "{TABLE}:{line_no}: layer `{}` is not a whole number",
                cells[0]
            )
        })?;
        let may_depend_on = cells[2]
            .split(',')
            .map(str::trim)
            .filter(|c| !c.is_empty() && *c != "—")
            .map(str::to_string)
            .collect();
        let name = cells[1].to_string();
        if rows
            .insert(
                name.clone(),
                Row {
                    layer,
                    may_depend_on,
                },
            )
            .is_some()
        {
            return Err(format!("{TABLE}:{line_no}: a second row for {name}"));
        }
    }
    Ok(rows)
}

/// The package name and the `tradeloom-*` crates of a manifest's dependency sections
/// (`[dependencies]`, `[build-dependencies]`, `[target.….dependencies]`, and their
/// `[dependencies.<name>]` forms); `[dev-dependencies]` are left out. A renamed dependency counts
/// under its `package`.
fn parse_manifest(text: &str) -> (Option<String>, BTreeSet<String>) {
    let mut name = None;
    let mut deps = BTreeSet::new();
    let mut section = String::new();
    for line in text.lines() {
        let line = line.split('#').next().unwrap_or("").trim();
        if line.is_empty() {
            continue;
        }
        if let Some(header) = line.strip_prefix('[').and_then(|l| l.strip_suffix(']')) {
            section = header.trim().to_string();
            // `[dependencies.tradeloom-x]`: the table names the dependency.
            if let Some((table, dep)) = section.rsplit_once('.')
                && is_dependency_section(table)
            {
                let dep = dep.trim_matches('"');
                if dep.starts_with("tradeloom") {
                    deps.insert(dep.to_string());
                }
                section = format!("{table}.<one>");
            }
            continue;
        }
        let Some((key, value)) = line.split_once('=') else {
            continue;
        };
        let key = key.trim();
        if section == "package" && key == "name" && name.is_none() {
            name = Some(value.trim().trim_matches('"').to_string());
        }
        if let Some(table) = section.strip_suffix(".<one>") {
            // Inside `[dependencies.<name>]`: a `package = "…"` renames it.
            if key == "package" && is_dependency_section(table) {
                deps.insert(value.trim().trim_matches('"').to_string());
            }
            continue;
        }
        if !is_dependency_section(&section) {
            continue;
        }
        let dep = key.split('.').next().unwrap_or(key).trim_matches('"');
        let package = value
            .split("package")
            .nth(1)
            .and_then(|rest| rest.split('"').nth(1))
            .unwrap_or(dep);
        if package.starts_with("tradeloom") {
            deps.insert(package.to_string());
        }
    }
    (name, deps)
}

fn is_dependency_section(section: &str) -> bool {
    section == "dependencies"
        || section == "build-dependencies"
        || (section.starts_with("target.")
            && (section.ends_with(".dependencies") || section.ends_with(".build-dependencies")))
}

/// Every problem of the workspace's layering against the table, one message each.
fn problems(
    table: &BTreeMap<String, Row>,
    crates: &BTreeMap<String, BTreeSet<String>>,
) -> Vec<String> {
    let mut out = Vec::new();
    for (krate, deps) in crates {
        let Some(row) = table.get(krate) else {
            out.push(format!("{krate} has no row in {TABLE}"));
            continue;
        };
        for dep in deps {
            if row.may_depend_on.contains(dep) {
                continue;
            }
            let kind = match table.get(dep) {
                Some(d) if d.layer >= row.layer => "upward edge",
                Some(_) => "edge not listed",
                None => "a crate without a row",
            };
            out.push(format!("{krate} → {dep} is not in {TABLE} ({kind})"));
        }
    }
    for (krate, row) in table {
        if !crates.contains_key(krate) {
            out.push(format!(
                "{TABLE} has a row for {krate}, but no crate under crates/ has that name"
            ));
        }
        for dep in &row.may_depend_on {
            match table.get(dep) {
                None => out.push(format!(
                    "{TABLE}: {krate} may depend on {dep}, which has no row"
                )),
                Some(d) if d.layer >= row.layer => out.push(format!(
                    "{TABLE}: {krate} (layer {}) may depend on {dep} (layer {}); a crate may only depend on lower layers",
                    row.layer, d.layer
                )),
                Some(_) => {}
            }
        }
    }
    if let Some(cycle) = find_cycle(crates) {
        out.push(format!("dependency cycle: {}", cycle.join(" → ")));
    }
    out
}

/// A cycle of the dependency graph, as the crates along it (first repeated at the end).
fn find_cycle(crates: &BTreeMap<String, BTreeSet<String>>) -> Option<Vec<String>> {
    // 0: not visited, 1: on the current path, 2: done.
    fn visit<'a>(
        node: &'a str,
        crates: &'a BTreeMap<String, BTreeSet<String>>,
        state: &mut BTreeMap<&'a str, u8>,
        path: &mut Vec<&'a str>,
    ) -> Option<Vec<String>> {
        match state.get(node) {
            Some(2) => return None,
            Some(1) => {
                let from = path.iter().position(|n| *n == node).unwrap_or(0);
                let mut cycle: Vec<String> = path[from..].iter().map(|s| s.to_string()).collect();
                cycle.push(node.to_string());
                return Some(cycle);
            }
            _ => {}
        }
        state.insert(node, 1);
        path.push(node);
        for dep in crates.get(node).into_iter().flatten() {
            if let Some(cycle) = visit(dep, crates, state, path) {
                return Some(cycle);
            }
        }
        path.pop();
        state.insert(node, 2);
        None
    }
    let mut state = BTreeMap::new();
    for node in crates.keys() {
        if let Some(cycle) = visit(node, crates, &mut state, &mut Vec::new()) {
            return Some(cycle);
        }
    }
    None
}

/// Every crate under `crates/` with its `tradeloom-*` dependencies.
fn workspace_crates(root: &Path) -> BTreeMap<String, BTreeSet<String>> {
    let mut crates = BTreeMap::new();
    for entry in std::fs::read_dir(root.join("crates")).unwrap() {
        let manifest = entry.unwrap().path().join("Cargo.toml");
        if !manifest.is_file() {
            continue;
        }
        let text = std::fs::read_to_string(&manifest).unwrap();
        let (name, deps) = parse_manifest(&text);
        let name = name.unwrap_or_else(|| panic!("{}: no package name", manifest.display()));
        crates.insert(name, deps);
    }
    crates
}

#[test]
fn the_workspace_follows_the_layers_table() {
    let root = repo();
    let text = std::fs::read_to_string(root.join(TABLE)).unwrap();
    let table = parse_table(&text).unwrap_or_else(|e| panic!("{e}"));
    let crates = workspace_crates(&root);
    assert!(
        crates.contains_key("tradeloom-core") && crates.contains_key("tradeloom"),
        "the crates were not found under {}",
        root.join("crates").display()
    );
    let problems = problems(&table, &crates);
    assert!(
        problems.is_empty(),
        "the layering does not match {TABLE}:\n  {}",
        problems.join("\n  ")
    );
}

/// The checker itself, on a small made-up workspace: it names an upward edge, a missing row, a
/// row without a crate, a badly layered row and a cycle.
#[test]
fn the_layering_check_names_each_problem() {
    let table = parse_table(
        "<!-- layers:begin -->\n| layer | crate | may depend on |\n| --- | --- | --- |\n\
         | 0 | tradeloom-core | — |\n| 1 | tradeloom-agents | tradeloom-core |\n\
         | 1 | tradeloom-ops | tradeloom-core, tradeloom-agents |\n\
         | 2 | tradeloom-gone | tradeloom-core |\n<!-- layers:end -->\n",
    )
    .unwrap();
    let manifest = |text: &str| parse_manifest(text);
    let (name, deps) = manifest(
        "[package]\nname = \"tradeloom-ops\"\n\n[dependencies]\ntradeloom-core.workspace = true\n\
         tradeloom-agents = { workspace = true }\nserde.workspace = true\n\n\
         [dev-dependencies]\ntradeloom-server.workspace = true\n",
    );
    assert_eq!(name.as_deref(), Some("tradeloom-ops"));
    assert_eq!(
        deps,
        BTreeSet::from(["tradeloom-agents".to_string(), "tradeloom-core".to_string()])
    );
    let mut crates = BTreeMap::new();
    crates.insert(name.unwrap(), deps);
    crates.insert(
        "tradeloom-agents".to_string(),
        BTreeSet::from(["tradeloom-ops".to_string(), "tradeloom-core".to_string()]),
    );
    crates.insert("tradeloom-core".to_string(), BTreeSet::new());
    crates.insert("tradeloom-new".to_string(), BTreeSet::new());
    let found = problems(&table, &crates);
    for expected in [
        "tradeloom-agents → tradeloom-ops is not in docs/src/layers.md (upward edge)",
        "tradeloom-new has no row in docs/src/layers.md",
        "docs/src/layers.md has a row for tradeloom-gone, but no crate under crates/ has that name",
        "docs/src/layers.md: tradeloom-ops (layer 1) may depend on tradeloom-agents (layer 1); a crate may only depend on lower layers",
        "dependency cycle: tradeloom-agents → tradeloom-ops → tradeloom-agents",
    ] {
        assert!(
            found.iter().any(|p| p == expected),
            "missing `{expected}` in {found:#?}"
        );
    }
    assert_eq!(found.len(), 5, "{found:#?}");
}
