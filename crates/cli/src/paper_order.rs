//! `tradeloom order RUN_ID --symbol S --side buy|sell --quantity Q [--limit P]`: one order
//! sent to a running paper run whose spec accepts `external_orders` (see
//! [`tradeloom_runs::paper::orders`]). The run records it, journals it, asks its kill switch
//! and pre-trade risk, and fills it on a later bar; this waits for the fill.
//!
//! Exit codes: 0 filled (or, with `--no-wait`, taken by the run); 1 refused, cancelled,
//! expired, or still working when the wait ended; 2 bad arguments, or the run cannot take
//! orders (not found, not a paper run, not running, no `external_orders`, did not take it).

use std::path::Path;
use std::process::ExitCode;
use std::time::Duration;

use anyhow::Result;
use clap::{Args, ValueEnum};
use tradeloom_runs::paper::orders::{self, ExternalOrder, OrderStatus, SendWait};

#[derive(Clone, Copy, ValueEnum)]
pub enum SideArg {
    Buy,
    Sell,
}

#[derive(Args)]
pub struct OrderArgs {
    /// The paper run's full id.
    pub run: String,
    /// One of the run's instruments.
    #[arg(long)]
    pub symbol: String,
    #[arg(long, value_enum)]
    pub side: SideArg,
    /// An exact decimal at the instrument's size precision.
    #[arg(long)]
    pub quantity: String,
    /// A limit price (default: a market order).
    #[arg(long)]
    pub limit: Option<String>,
    /// The order's id in the run (default: `cli:` and the time); a second order with the same
    /// id is not sent again: its reply is shown.
    #[arg(long)]
    pub id: Option<String>,
    /// How long to wait for the fill, in seconds.
    #[arg(long, default_value_t = 10)]
    pub wait: u64,
    /// Do not wait for the fill: only for the run to take the order.
    #[arg(long)]
    pub no_wait: bool,
    /// Print the run's reply as JSON.
    #[arg(long)]
    pub json: bool,
}

pub fn run(data_dir: &Path, args: OrderArgs) -> Result<ExitCode> {
    let id = args
        .id
        .clone()
        .unwrap_or_else(|| orders::timed_client_id("cli"));
    if let Err(e) = orders::check_client_id(&id) {
        eprintln!("error: --id: {e}");
        return Ok(ExitCode::from(2));
    }
    let order = ExternalOrder {
        client_order_id: id,
        source: "cli".to_string(),
        symbol: args.symbol.clone(),
        side: match args.side {
            SideArg::Buy => orders::Side::Buy,
            SideArg::Sell => orders::Side::Sell,
        },
        quantity: args.quantity.clone(),
        limit: args.limit.clone(),
    };
    let wait = SendWait {
        fill: if args.no_wait {
            Duration::ZERO
        } else {
            Duration::from_secs(args.wait)
        },
        ..SendWait::default()
    };
    let reply = match orders::send(data_dir, &args.run, &order, wait) {
        Ok(reply) => reply,
        Err(e) => {
            eprintln!("error: {e}");
            return Ok(ExitCode::from(2));
        }
    };
    if args.json {
        println!("{}", serde_json::to_string(&reply)?);
    } else {
        let status = serde_json::to_value(reply.status)?;
        let status = status.as_str().unwrap_or_default();
        println!(
            "order {} ({}) in paper run {}: {status}{}",
            reply.client_order_id,
            reply
                .order_id
                .map_or("no engine order".to_string(), |id| format!("order id {id}")),
            reply.run_id,
            reply
                .reason
                .as_deref()
                .map(|r| format!(" — {r}"))
                .unwrap_or_default()
        );
        for f in &reply.fills {
            println!(
                "  fill {}: {} @ {} (fee {}) at {}",
                f.fill_id, f.quantity, f.price, f.fee, f.ts
            );
        }
    }
    let ok = match reply.status {
        OrderStatus::Filled => true,
        OrderStatus::Accepted | OrderStatus::PartiallyFilled => args.no_wait,
        _ => false,
    };
    Ok(if ok {
        ExitCode::SUCCESS
    } else {
        ExitCode::from(1)
    })
}
