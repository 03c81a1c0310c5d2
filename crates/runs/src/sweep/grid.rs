//! The grid of a sweep: `KEY=VALUES,KEY=VALUES` where a key is a dotted path into the run spec
//! (`strategy.params.fast`, `execution.fee_bps`, `data.0.path`) and the values are an inclusive
//! range `START..END:STEP` (`STEP` 1 when left out) or a list `5,10,20` (numbers, words, `true`).
//!
//! A point sets its values in the spec's YAML tree before the spec is parsed and validated, so a
//! point is checked exactly as `tradeloom run` checks a spec.

use std::path::{Path, PathBuf};

use serde_json::{Map, Value};

use super::SweepError;
use crate::RunError;
use crate::spec::{ResolvedSpec, parse_spec, read_spec_text, resolve};

/// The most points a grid may have.
pub const MAX_POINTS: usize = 10_000;

/// One key of the grid and its values, in the order given.
#[derive(Clone, Debug, PartialEq)]
pub struct Axis {
    pub key: String,
    pub values: Vec<Value>,
}

/// A parsed grid: its axes in the order given.
#[derive(Clone, Debug, PartialEq)]
pub struct Grid {
    pub axes: Vec<Axis>,
}

/// One point of a grid: a value per key.
pub type Point = Map<String, Value>;

impl Grid {
    /// Parses `fast=5..30:5,slow=20..100:10` or `fast=5,10,20`.
    pub fn parse(text: &str) -> Result<Grid, SweepError> {
        let mut axes: Vec<Axis> = Vec::new();
        for token in text.split(',') {
            let token = token.trim();
            let (key, value) = match token.split_once('=') {
                Some((key, value)) => {
                    let key = key.trim();
                    check_key(key)?;
                    if axes.iter().any(|a| a.key == key) {
                        return Err(grid_error(key, "the key is given twice".to_string()));
                    }
                    axes.push(Axis {
                        key: key.to_string(),
                        values: Vec::new(),
                    });
                    (key.to_string(), value.trim())
                }
                None => match axes.last() {
                    Some(axis) => (axis.key.clone(), token),
                    None => {
                        return Err(SweepError::Grid {
                            key: token.to_string(),
                            message: "expected KEY=VALUES, e.g. `strategy.params.fast=5..30:5`"
                                .to_string(),
                        });
                    }
                },
            };
            let values = parse_values(&key, value)?;
            // The axis was pushed above or is the last one.
            if let Some(axis) = axes.last_mut() {
                axis.values.extend(values);
            }
        }
        if axes.is_empty() {
            return Err(SweepError::Syntax(
                "the grid is empty; expected KEY=VALUES, e.g. `strategy.params.fast=5..30:5`"
                    .to_string(),
            ));
        }
        let grid = Grid { axes };
        let count = grid.len();
        if count > MAX_POINTS {
            return Err(SweepError::Syntax(format!(
                "the grid has {count} points, more than the {MAX_POINTS} a sweep may run"
            )));
        }
        Ok(grid)
    }

    /// The number of points (the product of the axes' lengths).
    pub fn len(&self) -> usize {
        self.axes
            .iter()
            .map(|a| a.values.len())
            .fold(1usize, usize::saturating_mul)
    }

    /// Whether the grid has no point (never, once parsed).
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Every point, the first axis varying slowest.
    pub fn points(&self) -> Vec<Point> {
        let mut points = vec![Point::new()];
        for axis in &self.axes {
            let mut next = Vec::with_capacity(points.len() * axis.values.len());
            for point in &points {
                for value in &axis.values {
                    let mut p = point.clone();
                    p.insert(axis.key.clone(), value.clone());
                    next.push(p);
                }
            }
            points = next;
        }
        points
    }
}

fn grid_error(key: &str, message: String) -> SweepError {
    SweepError::Grid {
        key: key.to_string(),
        message,
    }
}

fn check_key(key: &str) -> Result<(), SweepError> {
    let ok = !key.is_empty()
        && key
            .split('.')
            .all(|s| !s.is_empty() && s.chars().all(|c| c.is_ascii_alphanumeric() || c == '_'));
    if ok {
        Ok(())
    } else {
        Err(grid_error(
            key,
            "a key is a dotted path of spec fields, e.g. `strategy.params.fast`".to_string(),
        ))
    }
}

/// The values of one `VALUES` token: a range or one scalar.
fn parse_values(key: &str, text: &str) -> Result<Vec<Value>, SweepError> {
    if text.is_empty() {
        return Err(grid_error(key, "no value after `=`".to_string()));
    }
    if let Some((start, rest)) = text.split_once("..") {
        let (end, step) = match rest.split_once(':') {
            Some((end, step)) => (end, Some(step)),
            None => (rest, None),
        };
        return range(key, text, start.trim(), end.trim(), step.map(str::trim));
    }
    let value: yaml_serde::Value = yaml_serde::from_str(text)
        .map_err(|e| grid_error(key, format!("`{text}` is not a value: {e}")))?;
    let value = serde_json::to_value(value)
        .map_err(|e| grid_error(key, format!("`{text}` is not a value: {e}")))?;
    if value.is_object() || value.is_array() || value.is_null() {
        return Err(grid_error(
            key,
            format!("`{text}` is not a number, a word or a boolean"),
        ));
    }
    Ok(vec![value])
}

/// A plain decimal number: its digits as an integer and its number of decimals.
fn decimal(text: &str) -> Option<(i128, u32)> {
    let (int, frac) = text.split_once('.').unwrap_or((text, ""));
    let digits = int.strip_prefix('-').unwrap_or(int);
    let plain = |s: &str| s.chars().all(|c| c.is_ascii_digit());
    if digits.is_empty() || !plain(digits) || !plain(frac) || frac.len() > 9 {
        return None;
    }
    let scaled: i128 = format!("{int}{frac}").parse().ok()?;
    Some((scaled, frac.len() as u32))
}

fn range(
    key: &str,
    text: &str,
    start: &str,
    end: &str,
    step: Option<&str>,
) -> Result<Vec<Value>, SweepError> {
    let number = |what: &str, s: &str| {
        decimal(s).ok_or_else(|| {
            grid_error(
                key,
                format!("`{text}`: the {what} `{s}` is not a number; a range is START..END:STEP, e.g. `5..30:5`"),
            )
        })
    };
    let (a, da) = number("start", start)?;
    let (b, db) = number("end", end)?;
    let (s, ds) = match step {
        Some(step) => number("step", step)?,
        None => (1, 0),
    };
    let scale = da.max(db).max(ds);
    let up = |(x, d): (i128, u32)| x * 10i128.pow(scale - d);
    let (a, b, s) = (up((a, da)), up((b, db)), up((s, ds)));
    if s <= 0 {
        return Err(grid_error(
            key,
            format!("`{text}`: the step must be positive"),
        ));
    }
    if a > b {
        return Err(grid_error(
            key,
            format!(
                "`{text}`: the start {start} is above the end {end}; write `{end}..{start}` instead"
            ),
        ));
    }
    let count = (b - a) / s + 1;
    if count > MAX_POINTS as i128 {
        return Err(grid_error(
            key,
            format!("`{text}`: {count} values, more than the {MAX_POINTS} a sweep may run"),
        ));
    }
    let divisor = 10f64.powi(scale as i32);
    Ok((0..count)
        .map(|i| {
            let x = a + i * s;
            if scale == 0 {
                Value::from(x as i64)
            } else {
                Value::from(x as f64 / divisor)
            }
        })
        .collect())
}

/// The spec a sweep varies: its text parsed into a YAML tree, and its path (relative data paths
/// are read from the spec's folder, as `tradeloom run` reads them).
#[derive(Clone, Debug)]
pub struct BaseSpec {
    pub path: PathBuf,
    pub text: String,
    tree: yaml_serde::Value,
}

impl BaseSpec {
    /// The spec at `path` with text `text` (a YAML mapping).
    pub fn new(path: &Path, text: String) -> Result<Self, SweepError> {
        let tree: yaml_serde::Value = yaml_serde::from_str(&text).map_err(|e| {
            SweepError::Spec(RunError::Spec {
                place: path.display().to_string(),
                message: format!("not YAML: {e}"),
            })
        })?;
        if !tree.is_mapping() {
            return Err(SweepError::Spec(RunError::Spec {
                place: path.display().to_string(),
                message: "a run spec is a YAML mapping (name:, mode:, instruments:, …)".to_string(),
            }));
        }
        Ok(Self {
            path: path.to_path_buf(),
            text,
            tree,
        })
    }

    /// Reads the spec file at `path`.
    pub fn load(path: &Path) -> Result<Self, SweepError> {
        let text = read_spec_text(path).map_err(SweepError::Spec)?;
        Self::new(path, text)
    }

    /// The `data[].path` entries of the spec: as given, and resolved against the spec's folder.
    pub fn data_paths(&self) -> Vec<(String, PathBuf)> {
        let dir = self.path.parent().unwrap_or(Path::new("."));
        self.tree
            .get("data")
            .and_then(yaml_serde::Value::as_sequence)
            .map(|list| {
                list.iter()
                    .filter_map(|d| d.get("path").and_then(yaml_serde::Value::as_str))
                    .map(|given| {
                        let p = Path::new(given);
                        let resolved = if p.is_absolute() {
                            p.to_path_buf()
                        } else {
                            dir.join(p)
                        };
                        (given.to_string(), resolved)
                    })
                    .collect()
            })
            .unwrap_or_default()
    }

    /// Checks that every key of `grid` names a field of the spec: each is set alone to its first
    /// value and the spec parsed (not validated), so an unknown field is blamed on its key.
    pub fn check_keys(&self, grid: &Grid) -> Result<(), SweepError> {
        for axis in &grid.axes {
            let Some(first) = axis.values.first() else {
                continue;
            };
            let mut point = Point::new();
            point.insert(axis.key.clone(), first.clone());
            let text = self.text_with(&point, &[])?;
            parse_spec(&text, &self.path).map_err(|e| {
                grid_error(
                    &axis.key,
                    format!(
                        "not a field of the run spec, or not one this value fits ({})",
                        message_of(e)
                    ),
                )
            })?;
        }
        Ok(())
    }

    /// The spec text with `point`'s values and `extra` (key, YAML value) set.
    pub fn text_with(
        &self,
        point: &Point,
        extra: &[(&str, yaml_serde::Value)],
    ) -> Result<String, SweepError> {
        let mut tree = self.tree.clone();
        for (key, value) in point {
            let value = yaml_serde::to_value(value).map_err(|e| grid_error(key, e.to_string()))?;
            set_path(&mut tree, key, value).map_err(|m| grid_error(key, m))?;
        }
        for (key, value) in extra {
            set_path(&mut tree, key, value.clone()).map_err(|m| grid_error(key, m))?;
        }
        yaml_serde::to_string(&tree).map_err(|e| SweepError::Syntax(e.to_string()))
    }

    /// The spec of `point` (and `extra` fields), parsed and validated; an error names the point.
    pub fn resolve(
        &self,
        point: &Point,
        extra: &[(&str, yaml_serde::Value)],
    ) -> Result<ResolvedSpec, SweepError> {
        let text = self.text_with(point, extra)?;
        let invalid = |e: RunError| SweepError::Point {
            point: label(point),
            message: message_of(e),
        };
        let spec = parse_spec(&text, &self.path).map_err(invalid)?;
        resolve(spec, &self.path, text).map_err(invalid)
    }
}

/// A spec error's message without its place (the place is a line of the generated spec).
fn message_of(e: RunError) -> String {
    match e {
        RunError::Spec { message, .. } => message,
        other => other.to_string(),
    }
}

/// `strategy.params.fast=10, strategy.params.slow=20`.
pub fn label(point: &Point) -> String {
    point
        .iter()
        .map(|(k, v)| format!("{k}={}", scalar_text(v)))
        .collect::<Vec<_>>()
        .join(", ")
}

/// A value as a grid writes it (`10`, `0.5`, `next_open`).
pub fn scalar_text(v: &Value) -> String {
    match v {
        Value::String(s) => s.clone(),
        other => other.to_string(),
    }
}

/// Sets `value` at the dotted `key` of `tree`, creating mappings on the way; a number selects an
/// entry of a list.
fn set_path(
    tree: &mut yaml_serde::Value,
    key: &str,
    value: yaml_serde::Value,
) -> Result<(), String> {
    let segments: Vec<&str> = key.split('.').collect();
    let mut node = tree;
    for (i, segment) in segments.iter().enumerate() {
        let last = i + 1 == segments.len();
        let here = segments[..i].join(".");
        if node.is_null() {
            *node = yaml_serde::Value::Mapping(yaml_serde::Mapping::new());
        }
        node = match node {
            yaml_serde::Value::Mapping(map) => {
                let k = yaml_serde::Value::String((*segment).to_string());
                if last {
                    map.insert(k, value);
                    return Ok(());
                }
                if map.get(&k).is_none() {
                    map.insert(k.clone(), yaml_serde::Value::Null);
                }
                // Inserted just above when missing.
                match map.get_mut(&k) {
                    Some(v) => v,
                    None => return Err(format!("`{segment}` cannot be set")),
                }
            }
            yaml_serde::Value::Sequence(list) => {
                let len = list.len();
                let index: usize = segment.parse().map_err(|_| {
                    format!("`{here}` is a list; select an entry by number, e.g. `{here}.0`")
                })?;
                let Some(entry) = list.get_mut(index) else {
                    return Err(format!(
                        "`{here}` has {len} entries; there is no entry {index}"
                    ));
                };
                if last {
                    *entry = value;
                    return Ok(());
                }
                entry
            }
            _ => return Err(format!("`{here}` is a value, not a section with fields")),
        };
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn values(grid: &Grid, i: usize) -> Vec<String> {
        grid.axes[i].values.iter().map(scalar_text).collect()
    }

    fn error_of(text: &str) -> String {
        match Grid::parse(text) {
            Ok(g) => panic!("expected an error, got {g:?}"),
            Err(e) => e.to_string(),
        }
    }

    #[test]
    fn ranges_include_the_end_on_the_step() {
        let g =
            Grid::parse("strategy.params.fast=5..30:5,strategy.params.slow=20..100:10").unwrap();
        assert_eq!(g.axes[0].key, "strategy.params.fast");
        assert_eq!(values(&g, 0), ["5", "10", "15", "20", "25", "30"]);
        assert_eq!(values(&g, 1).len(), 9);
        assert_eq!(g.len(), 54);
        let g = Grid::parse("a=5..28:5").unwrap();
        assert_eq!(values(&g, 0), ["5", "10", "15", "20", "25"]);
        let g = Grid::parse("a=1..3").unwrap();
        assert_eq!(values(&g, 0), ["1", "2", "3"]);
        let g = Grid::parse("execution.fee_bps=0..1:0.25").unwrap();
        assert_eq!(values(&g, 0), ["0.0", "0.25", "0.5", "0.75", "1.0"]);
        let g = Grid::parse("a=-2..2:2").unwrap();
        assert_eq!(values(&g, 0), ["-2", "0", "2"]);
    }

    #[test]
    fn lists_of_numbers_and_words() {
        let g =
            Grid::parse("fast=5,10,20, slow=50,execution.fill_model=next_open,bar_close").unwrap();
        assert_eq!(values(&g, 0), ["5", "10", "20"]);
        assert_eq!(values(&g, 1), ["50"]);
        assert_eq!(values(&g, 2), ["next_open", "bar_close"]);
        assert_eq!(g.axes[2].values[0], Value::from("next_open"));
        assert_eq!(g.axes[0].values[0], Value::from(5));
        let points = g.points();
        assert_eq!(points.len(), 6);
        assert_eq!(
            label(&points[0]),
            "execution.fill_model=next_open, fast=5, slow=50"
        );
        assert_eq!(points[1]["execution.fill_model"], "bar_close");
        assert_eq!(points[2]["fast"], 10);
    }

    #[test]
    fn bad_grids_name_the_key() {
        let e = error_of("strategy.params.fast=5..30:0");
        assert_eq!(
            e,
            "grid key `strategy.params.fast`: `5..30:0`: the step must be positive"
        );
        let e = error_of("fast=30..5:5");
        assert!(
            e.starts_with("grid key `fast`: `30..5:5`: the start 30 is above the end 5"),
            "{e}"
        );
        let e = error_of("fast=5..x:5");
        assert!(
            e.starts_with("grid key `fast`: `5..x:5`: the end `x` is not a number"),
            "{e}"
        );
        let e = error_of("fast=");
        assert_eq!(e, "grid key `fast`: no value after `=`");
        let e = error_of("fast=1,fast=2");
        assert_eq!(e, "grid key `fast`: the key is given twice");
        let e = error_of("strategy..fast=1");
        assert!(
            e.starts_with("grid key `strategy..fast`: a key is a dotted path"),
            "{e}"
        );
        let e = error_of("5,fast=1");
        assert!(e.contains("expected KEY=VALUES"), "{e}");
        let e = error_of("a=0..100000");
        assert!(e.contains("100001 values, more than the 10000"), "{e}");
        let e = error_of("a=1..100,b=1..200");
        assert!(e.contains("20000 points"), "{e}");
        let e = error_of("a={x: 1}");
        assert!(e.contains("not a number, a word or a boolean"), "{e}");
    }

    const SPEC: &str = "name: t
mode: backtest
instruments: [{symbol: GOOG, price_precision: 2, size_precision: 0}]
data: [{symbol: GOOG, path: goog.csv}]
strategy: {name: sma_cross, params: {fast: 10, slow: 20, quantity: 10}}
account: {initial_cash: 100000, currency: USD}
";

    #[test]
    fn points_set_fields_before_validation() {
        let base = BaseSpec::new(Path::new("dir/spec.yaml"), SPEC.to_string()).unwrap();
        let grid = Grid::parse(
            "strategy.params.fast=5,strategy.params.slow=30,execution.fee_bps=2.5,data.0.path=x.csv",
        )
        .unwrap();
        base.check_keys(&grid).unwrap();
        let spec = base.resolve(&grid.points()[0], &[]).unwrap();
        let text = yaml_serde::to_string(&spec.spec.strategy).unwrap();
        assert!(
            text.contains("fast: 5") && text.contains("slow: 30"),
            "{text}"
        );
        assert_eq!(spec.spec.execution.fee_bps.unwrap().to_string(), "2.5");
        assert_eq!(spec.data[0].path, Path::new("dir/x.csv"));
    }

    #[test]
    fn unknown_keys_and_invalid_points_are_named() {
        let base = BaseSpec::new(Path::new("spec.yaml"), SPEC.to_string()).unwrap();
        let e = base
            .check_keys(&Grid::parse("strategy.params.fastt=5").unwrap())
            .unwrap_err()
            .to_string();
        assert!(
            e.starts_with("grid key `strategy.params.fastt`: not a field"),
            "{e}"
        );
        assert!(e.contains("unknown field `fastt`"), "{e}");
        let e = base
            .check_keys(&Grid::parse("data.3.path=x").unwrap())
            .unwrap_err()
            .to_string();
        assert_eq!(
            e,
            "grid key `data.3.path`: `data` has 1 entries; there is no entry 3"
        );
        let e = base
            .check_keys(&Grid::parse("name.x=1").unwrap())
            .unwrap_err()
            .to_string();
        assert_eq!(
            e,
            "grid key `name.x`: `name` is a value, not a section with fields"
        );
        let grid = Grid::parse("strategy.params.fast=30,strategy.params.slow=20").unwrap();
        base.check_keys(&grid).unwrap();
        let e = base
            .resolve(&grid.points()[0], &[])
            .unwrap_err()
            .to_string();
        assert_eq!(
            e,
            "grid point strategy.params.fast=30, strategy.params.slow=20: strategy.params.slow: 20 must be greater than fast (30) (strategy `sma_cross`)"
        );
    }
}
