//! `report.md` and `equity.svg`: a summary table, every metric, the trades and an equity and
//! drawdown chart. The same renderer runs at the end of a run and on `tradeloom report ID`
//! (which reads only the run folder), and both give the same bytes.

use std::fmt::Write as _;
use std::io::{BufRead, BufReader};
use std::path::Path;

use serde_json::Value;
use tradeloom_core::UnixNanos;

use crate::error::RunError;

/// Most buckets the chart keeps; memory is constant whatever the number of bars.
const SAMPLER_BUCKETS: usize = 1024;
/// Trades listed at the head and at the tail of the report.
const TRADES_SHOWN: usize = 50;

#[derive(Clone, Copy, Debug, PartialEq)]
struct Bucket {
    ts: i64,
    equity: f64,
    drawdown: f64,
}

/// Downsamples an equity series to at most [`SAMPLER_BUCKETS`] buckets, keeping each bucket's
/// last equity and deepest drawdown (so troughs stay visible). Deterministic: the same sequence
/// gives the same buckets.
#[derive(Clone, Debug)]
pub struct EquitySampler {
    buckets: Vec<Bucket>,
    stride: u64,
    in_last: u64,
    first_ts: Option<i64>,
}

impl Default for EquitySampler {
    fn default() -> Self {
        Self {
            buckets: Vec::with_capacity(SAMPLER_BUCKETS),
            stride: 1,
            in_last: 1,
            first_ts: None,
        }
    }
}

impl EquitySampler {
    #[inline]
    pub fn push(&mut self, ts: UnixNanos, equity: f64, drawdown: f64) {
        self.first_ts.get_or_insert(ts.0);
        if self.in_last < self.stride
            && let Some(b) = self.buckets.last_mut()
        {
            b.ts = ts.0;
            b.equity = equity;
            b.drawdown = b.drawdown.max(drawdown);
            self.in_last += 1;
            return;
        }
        if self.buckets.len() == SAMPLER_BUCKETS {
            // Every bucket is full here and the capacity is even, so pairs merge into full
            // buckets of twice the stride.
            self.buckets = self
                .buckets
                .chunks(2)
                .map(|pair| Bucket {
                    ts: pair[pair.len() - 1].ts,
                    equity: pair[pair.len() - 1].equity,
                    drawdown: pair.iter().fold(0.0f64, |m, b| m.max(b.drawdown)),
                })
                .collect();
            self.stride *= 2;
        }
        self.buckets.push(Bucket {
            ts: ts.0,
            equity,
            drawdown,
        });
        self.in_last = 1;
    }

    pub fn len(&self) -> usize {
        self.buckets.len()
    }

    pub fn is_empty(&self) -> bool {
        self.buckets.is_empty()
    }
}

/// The first and last trades (as `trades.csv` fields) and how many there were.
#[derive(Clone, Debug, Default)]
pub struct TradeRows {
    pub head: Vec<Vec<String>>,
    pub tail: std::collections::VecDeque<Vec<String>>,
    pub total: u64,
}

impl TradeRows {
    /// Rows listed from the start and from the end.
    pub const SHOWN: usize = TRADES_SHOWN;

    pub fn push(&mut self, fields: Vec<String>) {
        self.total += 1;
        if self.head.len() < TRADES_SHOWN {
            self.head.push(fields);
        } else {
            if self.tail.len() == TRADES_SHOWN {
                self.tail.pop_front();
            }
            self.tail.push_back(fields);
        }
    }
}

/// What the report shows besides metrics, trades and the chart.
#[derive(Clone, Debug)]
pub struct ReportHeader {
    pub name: String,
    pub run_id: String,
    pub status: String,
    pub strategy: String,
    pub instruments: String,
    pub fill_model: String,
    pub costs: String,
    pub currency: String,
    pub error: Option<String>,
}

fn metric(metrics: &Value, key: &str) -> String {
    match metrics.get(key) {
        None | Some(Value::Null) => "–".to_string(),
        Some(Value::String(s)) => s.clone(),
        Some(Value::Number(n)) => n.to_string(),
        Some(v) => v.to_string(),
    }
}

fn pct(metrics: &Value, key: &str) -> String {
    match metrics.get(key).and_then(Value::as_f64) {
        Some(x) => format!("{x:.2} %"),
        None => "–".to_string(),
    }
}

fn ratio(metrics: &Value, key: &str) -> String {
    match metrics.get(key).and_then(Value::as_f64) {
        Some(x) => format!("{x:.3}"),
        None => "–".to_string(),
    }
}

fn date(ts: &str) -> &str {
    ts.get(..10).unwrap_or(ts)
}

/// Renders `report.md`.
pub fn render_markdown(header: &ReportHeader, metrics: &Value, trades: &TradeRows) -> String {
    let c = &header.currency;
    let mut md = String::new();
    let _ = writeln!(md, "# {} — backtest report\n", header.name);
    let _ = writeln!(md, "| | |\n|---|---|");
    let _ = writeln!(md, "| Run | `{}` |", header.run_id);
    let _ = writeln!(md, "| Status | {} |", header.status);
    if let Some(e) = &header.error {
        let _ = writeln!(md, "| Error | {} |", e.replace('|', "\\|"));
    }
    let _ = writeln!(md, "| Strategy | {} |", header.strategy);
    let _ = writeln!(md, "| Instruments | {} |", header.instruments);
    let _ = writeln!(
        md,
        "| Period | {} → {} ({} bars) |",
        date(&metric(metrics, "start")),
        date(&metric(metrics, "end")),
        metric(metrics, "bars")
    );
    let _ = writeln!(md, "| Fill model | {} |", header.fill_model);
    let _ = writeln!(md, "| Costs | {} |", header.costs);
    let _ = writeln!(
        md,
        "| Initial cash | {} {c} |",
        metric(metrics, "initial_cash")
    );
    let _ = writeln!(
        md,
        "| Final equity | {} {c} |",
        metric(metrics, "final_equity")
    );
    let _ = writeln!(md, "| Net PnL | {} {c} |", metric(metrics, "net_pnl"));
    let _ = writeln!(
        md,
        "| Total return | {} |",
        pct(metrics, "total_return_pct")
    );
    let _ = writeln!(
        md,
        "| Max drawdown | {} |",
        pct(metrics, "max_drawdown_pct")
    );
    let _ = writeln!(md, "| Sharpe | {} |", ratio(metrics, "sharpe"));
    let _ = writeln!(md, "| Trades | {} |\n", metric(metrics, "trades"));

    let _ = writeln!(md, "## Performance\n\n| Metric | Value |\n|---|---|");
    let rows: [(&str, String); 22] = [
        ("Total return", pct(metrics, "total_return_pct")),
        ("CAGR", pct(metrics, "cagr_pct")),
        ("Annual volatility", pct(metrics, "annual_volatility_pct")),
        ("Sharpe ratio", ratio(metrics, "sharpe")),
        ("Sortino ratio", ratio(metrics, "sortino")),
        ("Calmar ratio", ratio(metrics, "calmar")),
        ("Max drawdown", pct(metrics, "max_drawdown_pct")),
        (
            "Max drawdown duration",
            format!("{} days", metric(metrics, "max_drawdown_duration_days")),
        ),
        ("Trades (closed)", metric(metrics, "trades")),
        ("Win rate", pct(metrics, "win_rate_pct")),
        ("Profit factor", ratio(metrics, "profit_factor")),
        (
            "Average trade",
            format!("{} {c}", metric(metrics, "avg_trade")),
        ),
        (
            "Best trade",
            format!("{} {c}", metric(metrics, "best_trade")),
        ),
        (
            "Worst trade",
            format!("{} {c}", metric(metrics, "worst_trade")),
        ),
        ("Exposure", pct(metrics, "exposure_pct")),
        ("Fees", format!("{} {c}", metric(metrics, "fees"))),
        ("Turnover", format!("{} {c}", metric(metrics, "turnover"))),
        ("Orders", metric(metrics, "orders")),
        ("Fills", metric(metrics, "fills")),
        ("Rejected orders", metric(metrics, "rejected_orders")),
        ("Bars", metric(metrics, "bars")),
        ("Periods per year", metric(metrics, "periods_per_year")),
    ];
    for (k, v) in rows {
        let _ = writeln!(md, "| {k} | {v} |");
    }
    let _ = writeln!(
        md,
        "\n## Equity and drawdown\n\n![Equity and drawdown](equity.svg)\n"
    );
    let _ = writeln!(md, "## Trades\n");
    if trades.total == 0 {
        let _ = writeln!(md, "No trades.");
    } else {
        let shown = trades.head.len() + trades.tail.len();
        if (shown as u64) < trades.total {
            let _ = writeln!(
                md,
                "{} trades; the first {} and the last {} are listed, all are in `trades.csv`.\n",
                trades.total,
                trades.head.len(),
                trades.tail.len()
            );
        } else {
            let _ = writeln!(md, "{} trades (also in `trades.csv`).\n", trades.total);
        }
        let _ = writeln!(
            md,
            "| # | Symbol | Side | Qty | Entry | Entry price | Exit | Exit price | Net PnL | Bars |\n|---|---|---|---|---|---|---|---|---|---|"
        );
        let gap = (shown as u64) < trades.total;
        for (i, f) in trades.head.iter().chain(trades.tail.iter()).enumerate() {
            if gap && i == trades.head.len() {
                let _ = writeln!(md, "| … | | | | | | | | | |");
            }
            let field = |k: usize| f.get(k).map(String::as_str).unwrap_or("");
            let exit = if field(6).is_empty() {
                "open"
            } else {
                date(field(6))
            };
            let _ = writeln!(
                md,
                "| {} | {} | {} | {} | {} | {} | {} | {} | {} | {} |",
                field(0),
                field(1),
                field(2),
                field(3),
                date(field(4)),
                field(5),
                exit,
                field(7),
                field(10),
                field(11)
            );
        }
    }
    md
}

fn fmt_day(ts: i64) -> String {
    UnixNanos(ts).date_string()
}

/// Renders `equity.svg`: equity on top, drawdown below, from the sampled series.
pub fn render_svg(sampler: &EquitySampler, currency: &str) -> String {
    const W: f64 = 900.0;
    const LEFT: f64 = 90.0;
    const RIGHT: f64 = 20.0;
    const EQ_TOP: f64 = 30.0;
    const EQ_H: f64 = 250.0;
    const DD_TOP: f64 = 320.0;
    const DD_H: f64 = 110.0;
    let mut svg = String::new();
    let _ = writeln!(
        svg,
        r##"<svg xmlns="http://www.w3.org/2000/svg" width="900" height="470" viewBox="0 0 900 470" font-family="sans-serif" font-size="12">"##
    );
    let _ = writeln!(svg, r##"<rect width="900" height="470" fill="#ffffff"/>"##);
    let b = &sampler.buckets;
    if b.is_empty() {
        let _ = writeln!(
            svg,
            r##"<text x="450" y="235" text-anchor="middle">no data</text></svg>"##
        );
        return svg;
    }
    let (mut lo, mut hi) = (f64::MAX, f64::MIN);
    let mut dd_max: f64 = 0.0;
    for x in b {
        lo = lo.min(x.equity);
        hi = hi.max(x.equity);
        dd_max = dd_max.max(x.drawdown);
    }
    if hi - lo < 1e-9 {
        hi = lo + 1.0;
    }
    if dd_max < 1e-9 {
        dd_max = 1.0;
    }
    let n = b.len();
    let x_of = |i: usize| {
        if n == 1 {
            LEFT
        } else {
            LEFT + (W - LEFT - RIGHT) * i as f64 / (n - 1) as f64
        }
    };
    let _ = writeln!(
        svg,
        r##"<text x="{LEFT}" y="18" font-weight="bold">Equity ({currency})</text>"##
    );
    let _ = writeln!(
        svg,
        r##"<rect x="{LEFT}" y="{EQ_TOP}" width="{:.1}" height="{EQ_H}" fill="none" stroke="#cccccc"/>"##,
        W - LEFT - RIGHT
    );
    let _ = writeln!(
        svg,
        r##"<text x="{:.1}" y="{:.1}" text-anchor="end">{hi:.2}</text><text x="{:.1}" y="{:.1}" text-anchor="end">{lo:.2}</text>"##,
        LEFT - 6.0,
        EQ_TOP + 10.0,
        LEFT - 6.0,
        EQ_TOP + EQ_H
    );
    let mut points = String::new();
    for (i, x) in b.iter().enumerate() {
        let y = EQ_TOP + EQ_H * (1.0 - (x.equity - lo) / (hi - lo));
        let _ = write!(points, "{:.1},{:.1} ", x_of(i), y);
    }
    let _ = writeln!(
        svg,
        r##"<polyline fill="none" stroke="#1f77b4" stroke-width="1.5" points="{}"/>"##,
        points.trim_end()
    );
    let _ = writeln!(
        svg,
        r##"<text x="{LEFT}" y="{:.1}" font-weight="bold">Drawdown (%)</text>"##,
        DD_TOP - 12.0
    );
    let _ = writeln!(
        svg,
        r##"<rect x="{LEFT}" y="{DD_TOP}" width="{:.1}" height="{DD_H}" fill="none" stroke="#cccccc"/>"##,
        W - LEFT - RIGHT
    );
    let mut area = format!("{LEFT:.1},{DD_TOP:.1} ");
    for (i, x) in b.iter().enumerate() {
        let y = DD_TOP + DD_H * (x.drawdown / dd_max);
        let _ = write!(area, "{:.1},{:.1} ", x_of(i), y);
    }
    let _ = write!(area, "{:.1},{DD_TOP:.1}", x_of(n - 1));
    let _ = writeln!(
        svg,
        r##"<polygon fill="#d62728" fill-opacity="0.35" stroke="#d62728" stroke-width="1" points="{area}"/>"##
    );
    let _ = writeln!(
        svg,
        r##"<text x="{:.1}" y="{:.1}" text-anchor="end">0</text><text x="{:.1}" y="{:.1}" text-anchor="end">-{dd_max:.2}</text>"##,
        LEFT - 6.0,
        DD_TOP + 10.0,
        LEFT - 6.0,
        DD_TOP + DD_H
    );
    let first = sampler.first_ts.unwrap_or(b[0].ts);
    let _ = writeln!(
        svg,
        r##"<text x="{LEFT}" y="{:.1}">{}</text><text x="{:.1}" y="{:.1}" text-anchor="end">{}</text>"##,
        DD_TOP + DD_H + 18.0,
        fmt_day(first),
        W - RIGHT,
        DD_TOP + DD_H + 18.0,
        fmt_day(b[n - 1].ts)
    );
    svg.push_str("</svg>\n");
    svg
}

/// Parses an RFC 3339 UTC timestamp as written by tradeloom (`YYYY-MM-DDTHH:MM:SS[.f]Z`).
pub fn parse_written_ts(text: &str) -> Option<UnixNanos> {
    let b = text.as_bytes();
    if b.len() < 20 || b[4] != b'-' || b[10] != b'T' || *b.last()? != b'Z' {
        return None;
    }
    let num = |r: std::ops::Range<usize>| text.get(r)?.parse::<u32>().ok();
    let frac = text.get(19..text.len() - 1).unwrap_or("");
    let nanos = if let Some(f) = frac.strip_prefix('.') {
        let digits: u32 = f.parse().ok()?;
        digits * 10u32.pow(9 - f.len() as u32)
    } else {
        0
    };
    UnixNanos::from_parts(
        num(0..4)? as i32,
        num(5..7)?,
        num(8..10)?,
        num(11..13)?,
        num(14..16)?,
        num(17..19)?,
        nanos,
    )
}

/// Rebuilds the chart sampler from `equity.parquet` (the drawdown derived as the engine does).
pub fn sample_equity(path: &Path) -> Result<EquitySampler, RunError> {
    let file = crate::equity::EquityFile::open(path)?;
    let mut drawdown = crate::equity::Drawdown::new(file.initial_cash());
    let mut sampler = EquitySampler::default();
    file.for_each(|row| {
        let dd = drawdown.next(row.equity);
        sampler.push(row.ts, row.equity.as_f64(), dd);
    })?;
    Ok(sampler)
}

/// Reads the listed trades back from `trades.csv`.
pub fn read_trades_csv(path: &Path) -> Result<TradeRows, RunError> {
    let file = std::fs::File::open(path).map_err(|e| RunError::io(path, e))?;
    let mut rows = TradeRows::default();
    for (i, line) in BufReader::new(file).lines().enumerate() {
        let line = line.map_err(|e| RunError::io(path, e))?;
        if i == 0 {
            continue;
        }
        rows.push(line.split(',').map(str::to_string).collect());
    }
    Ok(rows)
}

/// `report.html`'s file name in a run folder.
pub const REPORT_HTML: &str = "report.html";

/// TradingView lightweight-charts (Apache-2.0), vendored: see `assets/vendor/`.
const CHART_LIBRARY: &str = include_str!(
    "../../../assets/vendor/lightweight-charts/lightweight-charts.standalone.production.js"
);
const CHARTS_JS: &str = include_str!("../../../assets/common/charts.js");
const REPORT_JS: &str = include_str!("../../../assets/report/report.js");
const REPORT_CSS: &str = include_str!("../../../assets/report/report.css");

/// Text for HTML element content and attribute values.
pub fn html_escape(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for c in s.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&#39;"),
            c => out.push(c),
        }
    }
    out
}

/// JSON to embed in a `<script type="application/json">`: `<` only occurs inside strings in
/// JSON, where `\u003c` means the same, so no `</script>` can end the element early.
fn script_json(json: &str) -> String {
    json.trim_end().replace('<', "\\u003c")
}

/// Renders `report.html`: self-contained (the chart library, the data and the code inline; no
/// network), with interactive price (candles and trade markers), equity and drawdown charts,
/// every metric and the listed trades. `chart` is the run's `chart.json` text. The same inputs
/// give the same bytes.
pub fn render_html(
    header: &ReportHeader,
    metrics: &Value,
    chart: &str,
    sampler: &EquitySampler,
    trades: &TradeRows,
) -> String {
    let c = html_escape(&header.currency);
    let equity: Vec<Value> = sampler
        .buckets
        .iter()
        .map(|b| serde_json::json!([b.ts, b.equity, b.drawdown]))
        .collect();
    let rows: Vec<&Vec<String>> = trades.head.iter().chain(trades.tail.iter()).collect();
    let data = serde_json::json!({
        "header": {
            "name": header.name, "run_id": header.run_id, "status": header.status,
            "strategy": header.strategy, "instruments": header.instruments,
            "fill_model": header.fill_model, "costs": header.costs,
            "currency": header.currency, "error": header.error,
        },
        "metrics": metrics,
        "equity": equity,
        "trades": {"total": trades.total, "rows": rows},
    });
    // chart.json goes in as it is (already JSON), beside the rest.
    let data = serde_json::to_string(&data).unwrap_or_else(|_| "{}".to_string());
    let data = format!(
        "{},\"chart\":{}}}",
        data.strip_suffix('}').unwrap_or("{"),
        chart.trim_end()
    );
    let card = |label: &str, value: String| {
        format!(
            "<div><span>{}</span><b>{}</b></div>",
            html_escape(label),
            html_escape(&value)
        )
    };
    let summary = [
        card(
            "Final equity",
            format!("{} {}", metric(metrics, "final_equity"), header.currency),
        ),
        card("Total return", pct(metrics, "total_return_pct")),
        card("Max drawdown", pct(metrics, "max_drawdown_pct")),
        card("Sharpe", ratio(metrics, "sharpe")),
        card("Trades", metric(metrics, "trades")),
        card("Win rate", pct(metrics, "win_rate_pct")),
    ]
    .join("");
    let error = header
        .error
        .as_ref()
        .map(|e| format!("<p class=\"neg\">Error: {}</p>", html_escape(e)))
        .unwrap_or_default();
    let mut html = String::with_capacity(CHART_LIBRARY.len() + data.len() + 8192);
    let _ = write!(
        html,
        r#"<!doctype html>
<html lang="en"><head><meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<meta http-equiv="Content-Security-Policy" content="default-src 'none'; script-src 'unsafe-inline'; style-src 'unsafe-inline'; img-src data:">
<title>{title} — tradeloom report</title>
<style>{css}</style></head>
<body><main>
<h1>{title}</h1>
<p class="sub">Run <code>{run_id}</code> · {status} · {strategy} · {instruments} · fill model {fill_model} · {costs} · {c}</p>
{error}<div class="summary">{summary}</div>
<h2>Price and trades</h2><div class="card"><div id="price" class="chart"></div><div id="price-note" class="note"></div></div>
<h2>Equity</h2><div class="card"><div id="equity" class="chart"></div></div>
<h2>Drawdown (%)</h2><div class="card"><div id="drawdown" class="chart"></div></div>
<h2>Metrics</h2><div class="card"><table class="kv"><tbody id="metrics"></tbody></table></div>
<h2>Trades</h2><div class="card"><div id="trades-note" class="note"></div><div class="scroll"><table><thead><tr id="trades-head"></tr></thead><tbody id="trades-body"></tbody></table></div></div>
<p class="note">Written by tradeloom. Charts: TradingView Lightweight Charts™ (Apache-2.0), https://www.tradingview.com/</p>
</main>
<script type="application/json" id="tl-data">{data}</script>
<script>{lib}</script>
<script>{charts}</script>
<script>{app}</script>
</body></html>
"#,
        title = html_escape(&header.name),
        css = REPORT_CSS,
        run_id = html_escape(&header.run_id),
        status = html_escape(&header.status),
        strategy = html_escape(&header.strategy),
        instruments = html_escape(&header.instruments),
        fill_model = html_escape(&header.fill_model),
        costs = html_escape(&header.costs),
        data = script_json(&data),
        lib = CHART_LIBRARY,
        charts = CHARTS_JS,
        app = REPORT_JS,
    );
    html
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sampler_bounds_memory_and_keeps_troughs() {
        let mut s = EquitySampler::default();
        for i in 0..100_000i64 {
            let dd = if i == 54_321 { 42.0 } else { 0.0 };
            s.push(UnixNanos(i), i as f64, dd);
        }
        assert!(
            s.len() <= SAMPLER_BUCKETS && s.len() > SAMPLER_BUCKETS / 2,
            "{}",
            s.len()
        );
        assert_eq!(s.buckets.last().unwrap().equity, 99_999.0);
        assert!(s.buckets.iter().any(|b| b.drawdown == 42.0));
    }

    #[test]
    fn sampler_is_exact_for_short_series() {
        let mut s = EquitySampler::default();
        for i in 0..10i64 {
            s.push(UnixNanos(i), i as f64, 0.0);
        }
        assert_eq!(s.len(), 10);
    }

    #[test]
    fn parses_written_timestamps() {
        let t = UnixNanos::from_parts(2024, 1, 2, 3, 4, 5, 120_000_000).unwrap();
        assert_eq!(parse_written_ts(&t.to_string()), Some(t));
        assert_eq!(
            parse_written_ts("2004-08-19T00:00:00Z"),
            UnixNanos::from_date(2004, 8, 19)
        );
        assert_eq!(parse_written_ts("garbage"), None);
    }
}
