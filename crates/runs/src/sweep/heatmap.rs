//! `heatmap.svg`: one parameter across, another down, each cell coloured by the metric (green
//! best, red worst). With more than two parameters a cell shows the best value over the others.

use std::fmt::Write;

use serde_json::Value;

use super::grid::scalar_text;
use super::metric::Metric;

const CELL_W: usize = 64;
const CELL_H: usize = 28;
const LEFT: usize = 150;
const TOP: usize = 56;

/// One completed point: its values per key and the metric.
pub struct Cell<'a> {
    pub params: &'a serde_json::Map<String, Value>,
    pub value: Option<f64>,
}

/// The SVG document: `x` across, `y` down (`None`: one row).
pub fn render(metric: Metric, x: &Axis, y: Option<&Axis>, cells: &[Cell<'_>]) -> String {
    let rows: Vec<Option<&Value>> = match y {
        Some(y) => y.values.iter().map(Some).collect(),
        None => vec![None],
    };
    // The best value of each (x, y) cell.
    let mut grid: Vec<Vec<Option<f64>>> = vec![vec![None; x.values.len()]; rows.len()];
    for cell in cells {
        let Some(value) = cell.value else { continue };
        let Some(col) = x
            .values
            .iter()
            .position(|v| cell.params.get(&x.key) == Some(v))
        else {
            continue;
        };
        let row = match y {
            Some(y) => match y
                .values
                .iter()
                .position(|v| cell.params.get(&y.key) == Some(v))
            {
                Some(r) => r,
                None => continue,
            },
            None => 0,
        };
        let slot = &mut grid[row][col];
        if slot.is_none_or(|old| metric.better(value, old)) {
            *slot = Some(value);
        }
    }
    let defined: Vec<f64> = grid.iter().flatten().flatten().copied().collect();
    let lo = defined.iter().copied().fold(f64::INFINITY, f64::min);
    let hi = defined.iter().copied().fold(f64::NEG_INFINITY, f64::max);
    let width = LEFT + CELL_W * x.values.len() + 20;
    let height = TOP + CELL_H * rows.len() + 40;
    let mut svg = String::new();
    let _ = writeln!(
        svg,
        r#"<?xml version="1.0" encoding="UTF-8"?>
<svg xmlns="http://www.w3.org/2000/svg" width="{width}" height="{height}" viewBox="0 0 {width} {height}" font-family="sans-serif" font-size="11">
<title>{} by {} and {} ({})</title>
<rect width="{width}" height="{height}" fill="white"/>
<text x="{LEFT}" y="18" font-size="13">{} ({})</text>
<text x="{LEFT}" y="{}" font-size="11">{}</text>"#,
        metric.name(),
        escape(&x.key),
        escape(y.map_or("-", |y| y.key.as_str())),
        metric.direction(),
        metric.name(),
        metric.direction(),
        TOP - 18,
        escape(&x.key),
    );
    for (c, v) in x.values.iter().enumerate() {
        let _ = writeln!(
            svg,
            r#"<text x="{}" y="{}" text-anchor="middle">{}</text>"#,
            LEFT + c * CELL_W + CELL_W / 2,
            TOP - 4,
            escape(&scalar_text(v))
        );
    }
    if let Some(y) = y {
        let _ = writeln!(
            svg,
            r#"<text x="8" y="{}" font-size="11">{}</text>"#,
            TOP + 12,
            escape(&y.key)
        );
    }
    for (r, label) in rows.iter().enumerate() {
        let ty = TOP + r * CELL_H + CELL_H / 2 + 4;
        if let Some(label) = label {
            let _ = writeln!(
                svg,
                r#"<text x="{}" y="{ty}" text-anchor="end">{}</text>"#,
                LEFT - 6,
                escape(&scalar_text(label))
            );
        }
        for (c, value) in grid[r].iter().enumerate() {
            let (fill, text) = match value {
                Some(v) => {
                    let t = if hi > lo { (v - lo) / (hi - lo) } else { 1.0 };
                    let t = if metric.higher_is_better() {
                        t
                    } else {
                        1.0 - t
                    };
                    (colour(t), format!("{v:.3}"))
                }
                None => ("#dddddd".to_string(), "–".to_string()),
            };
            let _ = writeln!(
                svg,
                r#"<rect x="{}" y="{}" width="{CELL_W}" height="{CELL_H}" fill="{fill}" stroke="white"/><text x="{}" y="{ty}" text-anchor="middle">{text}</text>"#,
                LEFT + c * CELL_W,
                TOP + r * CELL_H,
                LEFT + c * CELL_W + CELL_W / 2,
            );
        }
    }
    if !defined.is_empty() {
        let _ = writeln!(
            svg,
            r#"<text x="{LEFT}" y="{}">range {lo:.3} … {hi:.3}; grey: no value</text>"#,
            TOP + rows.len() * CELL_H + 22
        );
    }
    svg.push_str("</svg>\n");
    svg
}

/// The key and values of one heat map axis.
pub struct Axis {
    pub key: String,
    pub values: Vec<Value>,
}

/// Red (0, worst) through yellow to green (1, best).
fn colour(t: f64) -> String {
    let t = t.clamp(0.0, 1.0);
    let (a, b, u) = if t < 0.5 {
        ((215.0, 48.0, 39.0), (254.0, 224.0, 139.0), t * 2.0)
    } else {
        ((254.0, 224.0, 139.0), (26.0, 152.0, 80.0), (t - 0.5) * 2.0)
    };
    let mix = |x: f64, y: f64| (x + (y - x) * u).round() as u8;
    format!(
        "#{:02x}{:02x}{:02x}",
        mix(a.0, b.0),
        mix(a.1, b.1),
        mix(a.2, b.2)
    )
}

fn escape(s: &str) -> String {
    s.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
        .replace('"', "&quot;")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn colours_run_from_red_to_green() {
        assert_eq!(colour(0.0), "#d73027");
        assert_eq!(colour(0.5), "#fee08b");
        assert_eq!(colour(1.0), "#1a9850");
    }

    #[test]
    fn the_best_cell_is_green_and_a_missing_one_grey() {
        let p = |x: i64, y: i64| {
            let mut m = serde_json::Map::new();
            m.insert("x".into(), x.into());
            m.insert("y".into(), y.into());
            m
        };
        let (a, b, c) = (p(1, 1), p(2, 1), p(1, 2));
        let cells = [
            Cell {
                params: &a,
                value: Some(1.0),
            },
            Cell {
                params: &b,
                value: Some(3.0),
            },
            Cell {
                params: &c,
                value: None,
            },
        ];
        let axis = |k: &str| Axis {
            key: k.into(),
            values: vec![1.into(), 2.into()],
        };
        let svg = render(Metric::Sharpe, &axis("x"), Some(&axis("y")), &cells);
        assert!(svg.contains(r##"fill="#1a9850" stroke="white"/><text x="246" y="74" text-anchor="middle">3.000"##), "{svg}");
        assert!(svg.contains(r##"fill="#d73027""##));
        assert_eq!(svg.matches("#dddddd").count(), 2);
        let svg = render(Metric::MaxDrawdownPct, &axis("x"), Some(&axis("y")), &cells);
        assert!(
            svg.contains(r##"fill="#d73027" stroke="white"/><text x="246""##),
            "lower is better"
        );
    }
}
