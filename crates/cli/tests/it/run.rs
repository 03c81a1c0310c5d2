//! A run's folder: its files, hashes, determinism, verification and report re-rendering.

use crate::{repo, run_json, stderr, stdout, tradeloom};

const ARTIFACTS: [&str; 12] = [
    "run_spec.yaml",
    "metadata.json",
    "journal.jsonl",
    "metrics.json",
    "orders.csv",
    "fills.csv",
    "trades.csv",
    "equity.parquet",
    "report.md",
    "equity.svg",
    "chart.json",
    "report.html",
];

#[test]
fn run_writes_a_complete_hashed_folder() {
    let data = tempfile::tempdir().unwrap();
    let spec = repo().join("examples/specs/goog_sma_cross.yaml");
    let (json, dir) = run_json(data.path(), &spec);
    for key in ["run_id", "run_dir", "status", "metrics"] {
        assert!(json.get(key).is_some(), "--json output lacks {key}");
    }
    for file in ARTIFACTS {
        assert!(dir.join(file).is_file(), "{file} missing");
    }
    let meta: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(dir.join("metadata.json")).unwrap()).unwrap();
    assert_eq!(meta["status"], "completed");
    assert_eq!(meta["run_id"], json["run_id"]);
    assert_eq!(meta["spec"]["sha256"].as_str().unwrap().len(), 64);
    assert_eq!(meta["data"][0]["sha256"].as_str().unwrap().len(), 64);
    for file in ARTIFACTS
        .iter()
        .filter(|f| !["metadata.json", "run_spec.yaml"].contains(f))
    {
        assert_eq!(
            meta["artifacts"][file]["sha256"].as_str().map(str::len),
            Some(64),
            "{file}"
        );
    }
    let journal = std::fs::read_to_string(dir.join("journal.jsonl")).unwrap();
    let lines: Vec<serde_json::Value> = journal
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    assert_eq!(lines[0]["event"], "run_started");
    assert_eq!(lines[0]["seq"], 1);
    assert_eq!(lines.last().unwrap()["event"], "run_finished");
    for (i, line) in lines.iter().enumerate() {
        assert_eq!(line["seq"], i as u64 + 1);
        assert!(
            line["ts"].as_str().unwrap().ends_with('Z'),
            "event time on every line"
        );
    }
    for kind in [
        "order_submitted",
        "order_accepted",
        "order_filled",
        "position_changed",
    ] {
        assert!(
            lines.iter().any(|l| l["event"] == kind),
            "{kind} missing from the journal"
        );
    }
    let metrics: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(dir.join("metrics.json")).unwrap()).unwrap();
    for key in [
        "total_return_pct",
        "cagr_pct",
        "annual_volatility_pct",
        "sharpe",
        "sortino",
        "max_drawdown_pct",
        "max_drawdown_duration_days",
        "calmar",
        "trades",
        "win_rate_pct",
        "profit_factor",
        "avg_trade",
        "exposure_pct",
        "fees",
        "turnover",
    ] {
        assert!(metrics.get(key).is_some(), "metrics.json lacks {key}");
    }
    let report = std::fs::read_to_string(dir.join("report.md")).unwrap();
    assert!(
        report.contains("112583.70"),
        "report shows the final equity"
    );
    assert!(report.contains("![Equity and drawdown](equity.svg)"));
    let svg = std::fs::read_to_string(dir.join("equity.svg")).unwrap();
    assert!(svg.starts_with("<svg") && svg.contains("<polyline"));
}

#[test]
fn same_spec_and_data_give_byte_identical_journal_and_metrics() {
    let data = tempfile::tempdir().unwrap();
    let spec = repo().join("examples/specs/eurusd_mean_reversion.yaml");
    let (a, dir_a) = run_json(data.path(), &spec);
    let (b, dir_b) = run_json(data.path(), &spec);
    assert_ne!(a["run_id"], b["run_id"]);
    for file in [
        "journal.jsonl",
        "metrics.json",
        "orders.csv",
        "fills.csv",
        "trades.csv",
        "equity.parquet",
        "run_spec.yaml",
        "equity.svg",
    ] {
        let x = std::fs::read(dir_a.join(file)).unwrap();
        let y = std::fs::read(dir_b.join(file)).unwrap();
        assert!(x == y, "{file} differs between two runs of the same spec");
    }
}

#[test]
fn verify_passes_then_catches_tampering() {
    let data = tempfile::tempdir().unwrap();
    let spec = repo().join("examples/specs/goog_sma_cross.yaml");
    let (json, dir) = run_json(data.path(), &spec);
    let id = json["run_id"].as_str().unwrap();
    let ok = tradeloom(data.path(), &["verify", id]);
    assert!(ok.status.success(), "{}{}", stdout(&ok), stderr(&ok));
    assert!(stdout(&ok).contains("all"), "{}", stdout(&ok));
    // Change one fill price in the journal.
    let journal = dir.join("journal.jsonl");
    let text = std::fs::read_to_string(&journal).unwrap();
    std::fs::write(&journal, text.replacen("\"price\":\"", "\"price\":\"1", 1)).unwrap();
    let bad = tradeloom(data.path(), &["verify", &id[..13]]);
    assert_eq!(bad.status.code(), Some(1));
    assert!(
        stdout(&bad).contains("MISMATCH  journal.jsonl"),
        "{}",
        stdout(&bad)
    );
}

#[test]
fn report_rerenders_identical_bytes() {
    let data = tempfile::tempdir().unwrap();
    let spec = repo().join("examples/specs/eurusd_mean_reversion.yaml");
    let (json, dir) = run_json(data.path(), &spec);
    let before_md = std::fs::read(dir.join("report.md")).unwrap();
    let before_svg = std::fs::read(dir.join("equity.svg")).unwrap();
    let before_html = std::fs::read(dir.join("report.html")).unwrap();
    let inode = |name: &str| {
        use std::os::unix::fs::MetadataExt;
        std::fs::metadata(dir.join(name)).unwrap().ino()
    };
    let svg_inode = inode("equity.svg");
    std::fs::remove_file(dir.join("report.md")).unwrap();
    std::fs::remove_file(dir.join("report.html")).unwrap();
    let out = tradeloom(data.path(), &["report", json["run_id"].as_str().unwrap()]);
    assert!(out.status.success(), "{}", stderr(&out));
    assert_eq!(std::fs::read(dir.join("report.md")).unwrap(), before_md);
    assert_eq!(std::fs::read(dir.join("equity.svg")).unwrap(), before_svg);
    assert_eq!(std::fs::read(dir.join("report.html")).unwrap(), before_html);
    // Replaced whole by a rename, not truncated and rewritten in place: a reader (the API
    // serving the file) sees the old bytes or the new, never half. No temporary file is left.
    assert_ne!(inode("equity.svg"), svg_inode);
    let left: Vec<_> = std::fs::read_dir(&dir)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .filter(|name| name.ends_with(".tmp"))
        .collect();
    assert!(left.is_empty(), "{left:?}");
    assert!(stdout(&out).contains("report.html"), "{}", stdout(&out));
    let verify = tradeloom(data.path(), &["verify", "latest"]);
    assert!(verify.status.success(), "{}", stdout(&verify));
}

/// report.html is one self-contained file: the chart library, the code and the run's data
/// inline, nothing fetched (its policy forbids it), and text from the spec cannot break out of
/// the page.
#[test]
fn report_html_is_self_contained_and_escapes_the_runs_text() {
    let data = tempfile::tempdir().unwrap();
    let spec_text = std::fs::read_to_string(repo().join("examples/specs/goog_sma_cross.yaml"))
        .unwrap()
        .replace(
            "name: goog-sma-cross",
            "name: \"</script><script>alert(1)</script>\"",
        )
        .replace(
            "../data/goog_1d.csv",
            &repo()
                .join("examples/data/goog_1d.csv")
                .display()
                .to_string(),
        );
    let spec = data.path().join("spec.yaml");
    std::fs::write(&spec, spec_text).unwrap();
    let (_, dir) = run_json(data.path(), &spec);
    let html = std::fs::read_to_string(dir.join("report.html")).unwrap();
    assert!(
        html.contains("default-src 'none'"),
        "a policy forbidding the network"
    );
    for remote in ["src=\"http", "href=\"http", "src='http", "<link", "import("] {
        assert!(!html.contains(remote), "report.html loads `{remote}`");
    }
    assert!(
        html.contains("TradingView Lightweight Charts"),
        "the library is inline"
    );
    assert_eq!(
        html.matches("<script").count(),
        4,
        "data, library, charts, report"
    );
    assert!(!html.contains("<script>alert(1)"), "the name is escaped");
    assert!(html.contains("&lt;/script&gt;&lt;script&gt;alert(1)"));
    // The inline data is the run's: every metric and the chart's candles and fills.
    let start = html
        .find("<script type=\"application/json\" id=\"tl-data\">")
        .unwrap();
    let rest = &html[start..];
    let json_text = &rest[rest.find('>').unwrap() + 1..rest.find("</script>").unwrap()];
    let data_json: serde_json::Value = serde_json::from_str(json_text).unwrap();
    let metrics: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(dir.join("metrics.json")).unwrap()).unwrap();
    assert_eq!(data_json["metrics"], metrics);
    assert_eq!(
        data_json["header"]["name"],
        "</script><script>alert(1)</script>"
    );
    assert_eq!(
        data_json["chart"]["instruments"][0]["candles"]
            .as_array()
            .unwrap()
            .len(),
        2148
    );
    assert_eq!(data_json["chart"]["fills_total"], metrics["fills"]);
    assert_eq!(
        data_json["trades"]["total"],
        metrics["trades"].as_u64().unwrap() + 1
    );
}

/// `report --open` hands report.html to `$BROWSER` (here a script that records its argument).
#[test]
fn report_open_hands_the_html_to_the_browser_command() {
    let data = tempfile::tempdir().unwrap();
    let (json, dir) = run_json(
        data.path(),
        &repo().join("examples/specs/goog_sma_cross.yaml"),
    );
    let record = data.path().join("opened.txt");
    let script = data.path().join("browser.sh");
    std::fs::write(
        &script,
        format!("#!/bin/sh\necho \"$1\" > {}\n", record.display()),
    )
    .unwrap();
    let mut perms = std::fs::metadata(&script).unwrap().permissions();
    std::os::unix::fs::PermissionsExt::set_mode(&mut perms, 0o755);
    std::fs::set_permissions(&script, perms).unwrap();
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_tradeloom"))
        .args([
            "report",
            json["run_id"].as_str().unwrap(),
            "--open",
            "--data-dir",
        ])
        .arg(data.path())
        .env("BROWSER", &script)
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", stderr(&out));
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
    while !record.exists() && std::time::Instant::now() < deadline {
        std::thread::sleep(std::time::Duration::from_millis(20));
    }
    let opened = std::fs::read_to_string(&record).unwrap();
    assert_eq!(opened.trim(), dir.join("report.html").display().to_string());

    let missing = std::process::Command::new(env!("CARGO_BIN_EXE_tradeloom"))
        .args(["report", "latest", "--open", "--data-dir"])
        .arg(data.path())
        .env("BROWSER", "/nonexistent/browser")
        .output()
        .unwrap();
    assert_eq!(missing.status.code(), Some(2), "{}", stderr(&missing));
    assert!(
        stderr(&missing).contains("cannot open report.html"),
        "{}",
        stderr(&missing)
    );
}

#[test]
fn runs_list_and_show() {
    let data = tempfile::tempdir().unwrap();
    let spec = repo().join("examples/specs/btcusd_buy_and_hold.yaml");
    let (json, _) = run_json(data.path(), &spec);
    let id = json["run_id"].as_str().unwrap();
    let list = tradeloom(data.path(), &["runs", "list"]);
    assert!(stdout(&list).contains(id) && stdout(&list).contains("btcusd-buy-and-hold"));
    let show = tradeloom(data.path(), &["runs", "show", "latest"]);
    assert!(stdout(&show).contains("completed"), "{}", stdout(&show));
    let missing = tradeloom(data.path(), &["runs", "show", "nope"]);
    assert_eq!(missing.status.code(), Some(2));
    assert!(
        stderr(&missing).contains("no run `nope`"),
        "{}",
        stderr(&missing)
    );
    // Cash account: a fee is charged on the buy, so cash is below initial − notional.
    assert_eq!(json["metrics"]["fills"], 1);
    assert_ne!(json["metrics"]["fees"], "0.00");
}

/// A run whose drawdown limit trips journals one `kill_switch_engaged` (the engine's, event time
/// only): the durable run kill switch it engages is not echoed back as an `operator` engagement
/// carrying a wall-clock time, so two runs give the same journal.
#[test]
fn a_tripped_drawdown_limit_is_journaled_once_and_deterministically() {
    let data = tempfile::tempdir().unwrap();
    let specs = tempfile::tempdir().unwrap();
    let example =
        std::fs::read_to_string(repo().join("examples/specs/goog_sma_cross.yaml")).unwrap();
    let data_path = repo().join("examples/data/goog_1d.csv");
    let text = example
        .replace("max_drawdown_pct: 50", "max_drawdown_pct: 0.5")
        .replace("quantity: 10}", "quantity: 200}")
        .replace("../data/goog_1d.csv", &data_path.display().to_string());
    assert!(
        text.contains("max_drawdown_pct: 0.5"),
        "the example's risk line moved"
    );
    let spec = specs.path().join("tripping.yaml");
    std::fs::write(&spec, text).unwrap();
    let (_, dir_a) = run_json(data.path(), &spec);
    let (_, dir_b) = run_json(data.path(), &spec);
    let journal = std::fs::read_to_string(dir_a.join("journal.jsonl")).unwrap();
    let engaged: Vec<&str> = journal
        .lines()
        .filter(|l| l.contains("\"event\":\"kill_switch_engaged\""))
        .collect();
    assert_eq!(engaged.len(), 1, "one engagement, got {engaged:#?}");
    assert!(
        engaged[0].contains("\"reason\":\"max_drawdown\""),
        "{}",
        engaged[0]
    );
    assert!(
        std::fs::read(dir_a.join("journal.jsonl")).unwrap()
            == std::fs::read(dir_b.join("journal.jsonl")).unwrap(),
        "journal.jsonl differs between two runs of a spec whose drawdown limit trips"
    );
}

#[test]
fn a_portfolio_strategy_trades_two_instruments_of_different_precisions() {
    let data = tempfile::tempdir().unwrap();
    let spec = repo().join("examples/specs/universe_rotation.yaml");
    let (json, dir) = run_json(data.path(), &spec);
    assert_eq!(json["status"], "completed");
    let meta: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(dir.join("metadata.json")).unwrap()).unwrap();
    assert_eq!(meta["strategy"], "momentum_rotation");
    // fills.csv: fill_id,order_id,ts,symbol,side,quantity,price,fee,liquidity
    let fills = std::fs::read_to_string(dir.join("fills.csv")).unwrap();
    let rows: Vec<Vec<&str>> = fills
        .lines()
        .skip(1)
        .map(|l| l.split(',').collect())
        .collect();
    let of = |symbol: &str| rows.iter().filter(|r| r[3] == symbol).count();
    assert!(of("AAA") > 0 && of("BBB") > 0, "{fills}");
    for r in &rows {
        let (quantity, price) = (r[5], r[6]);
        let decimals = |s: &str| s.split('.').nth(1).map_or(0, str::len);
        match r[3] {
            "AAA" => assert_eq!((decimals(quantity), decimals(price)), (0, 2), "{r:?}"),
            _ => assert_eq!((decimals(quantity), decimals(price)), (3, 4), "{r:?}"),
        }
    }
    let id = json["run_id"].as_str().unwrap();
    let ok = tradeloom(data.path(), &["verify", id]);
    assert!(ok.status.success(), "{}{}", stdout(&ok), stderr(&ok));
}
