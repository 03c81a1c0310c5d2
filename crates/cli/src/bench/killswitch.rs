//! `tradeloom bench killswitch`: the figures of the kill switch, printed, never asserted —
//! except the one that is a guarantee: no order let through by a check that started after
//! `engage` returned (exit 1 if any was). Workloads in [`tradeloom_runs::bench`].
//!
//! * overhead: engine bars/s over synthetic 1-minute bars traded by `sma_cross` 20/50, without
//!   a gate and with the data dir's kill switch as the gate (a cached check every bar, a `stat`
//!   of each scope's file before each order, a read when it changed); the median of several
//!   passes each;
//! * engage → last accepted order: a long backtest on one thread (`sma_cross` 2/3, an order
//!   every few bars), `KillSwitch::engage` on another at a random point; the time between the
//!   last accepted order and `engage` returning; the orders let through by a check that began
//!   after it returned (must be none) and those decided before it returned but reported
//!   accepted after (in flight).

use std::process::ExitCode;
use std::time::Duration;

use anyhow::Result;
use serde_json::json;
use tradeloom_runs::bench::{bars, gate_pass, median, race};

/// The seed of the synthetic bars.
const SEED: u64 = 11;

/// The flags of `tradeloom bench killswitch`.
#[derive(clap::Args)]
pub struct Args {
    /// Bars per throughput pass.
    #[arg(long, default_value_t = 1_000_000)]
    pub bars: u64,
    /// Passes and engage races (medians are printed).
    #[arg(long, default_value_t = 5)]
    pub repetitions: usize,
    #[arg(long)]
    pub json: bool,
}

/// `tradeloom bench killswitch`.
pub fn run(args: &Args) -> Result<ExitCode> {
    let (bars_n, json_out) = (args.bars, args.json);
    let repetitions = args.repetitions.max(1);
    let base = bars(bars_n, SEED);
    let dir = tempfile::tempdir()?;
    let (mut plain, mut gated) = (Vec::new(), Vec::new());
    let mut orders = 0;
    for _ in 0..repetitions {
        plain.push(gate_pass(&base, None)?.0);
        let (rate, n) = gate_pass(&base, Some(dir.path()))?;
        gated.push(rate);
        orders = n;
    }
    let (plain, gated) = (median(plain), median(gated));
    let overhead = (plain / gated - 1.0) * 100.0;

    let race_bars = bars(200_000, SEED);
    let seed = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.subsec_nanos())
        .unwrap_or(7);
    let (mut gaps, mut engages) = (Vec::new(), Vec::new());
    let mut after_total = 0;
    let mut in_flight_total = 0;
    let mut before_total = 0;
    for i in 0..repetitions {
        // 50–250 ms into the run, a different point each time.
        let delay = 50
            + u64::from(
                seed.wrapping_mul(2_654_435_761)
                    .wrapping_add(i as u32 * 7919)
                    % 200,
            );
        let race_dir = tempfile::tempdir()?;
        let r = race(&race_bars, race_dir.path(), Duration::from_millis(delay))?;
        gaps.push(r.gap_us);
        engages.push(r.engage_us);
        after_total += r.checked_after;
        in_flight_total += r.in_flight;
        before_total += r.accepted_before;
    }
    let (gap, engage_us) = (median(gaps), median(engages));
    if json_out {
        println!(
            "{}",
            json!({
                "bars": bars_n,
                "repetitions": repetitions,
                "orders_per_pass": orders,
                "bars_per_s_without_gate": plain,
                "bars_per_s_with_gate": gated,
                "overhead_pct": overhead,
                "last_accepted_before_engage_returned_us": gap,
                "engage_us": engage_us,
                "orders_accepted_before_engage": before_total,
                "orders_accepted_after_engage": after_total,
                "orders_in_flight_at_engage": in_flight_total,
            })
        );
    } else {
        println!(
            "kill switch, {bars_n} bars × {repetitions} (medians), sma_cross 20/50 ({orders} orders per pass):"
        );
        println!("  engine without gate        {:>12.0} bars/s", plain);
        println!(
            "  engine with kill switch    {:>12.0} bars/s (cached check per bar, stat per order)",
            gated
        );
        println!("  overhead                   {:>12.2} %", overhead);
        println!("engage race, sma_cross 2/3, {repetitions} runs engaged 50–250 ms in:");
        println!("  engage call                {:>12.0} µs", engage_us);
        println!(
            "  last accepted order → engage returned {:>8.0} µs before",
            gap
        );
        println!("  orders accepted before     {:>12}", before_total);
        println!(
            "  orders accepted after      {:>12} (checked after engage returned; must be 0)",
            after_total
        );
        println!(
            "  orders in flight at engage {:>12} (checked before it returned, reported after)",
            in_flight_total
        );
    }
    if after_total > 0 {
        eprintln!("error: {after_total} orders were accepted after `engage` returned");
        return Ok(ExitCode::from(1));
    }
    Ok(ExitCode::SUCCESS)
}
