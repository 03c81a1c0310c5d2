//! A paper run on a WebSocket feed through the binary: `tradeloom run` against a local server
//! that speaks Binance's kline stream format, which drops the connection mid-stream and resends
//! its last closed kline after the reconnect; a malformed message is journaled and counted;
//! the silent feed shows stale in `tradeloom health`; SIGTERM stops the run (exit 0) and the
//! folder reconciles and verifies. Without
//! `--http-allow` the loopback address is refused before anything runs.

use std::path::Path;
use std::process::{Command, Stdio};
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use axum::extract::ws::{Message, WebSocket, WebSocketUpgrade};

use crate::{repo, stderr, stdout, tradeloom, write_spec};

const T0: i64 = 1_767_225_600_000; // 2026-01-01T00:00:00Z, ms
const MINUTE: i64 = 60_000;

/// A closed 1-minute kline of GOOG `i` minutes after T0.
fn kline(i: i64) -> String {
    let t = T0 + i * MINUTE;
    format!(
        r#"{{"e":"kline","E":{},"s":"GOOG","k":{{"t":{t},"T":{},"s":"GOOG","i":"1m","o":"100.00","c":"{}.00","h":"200.00","l":"50.00","v":"10","x":true}}}}"#,
        t + MINUTE,
        t + MINUTE - 1,
        100 + i
    )
}

/// First connection: klines 0–4 and a malformed one, then the connection breaks. Later ones:
/// kline 4 again (as a server resending its last closed kline), then 5–9, and stay open.
async fn stream(mut socket: WebSocket, connection: usize) {
    let messages: Vec<String> = if connection == 0 {
        let mut m: Vec<String> = (0..5).map(kline).collect();
        m.push(kline(5).replace(r#""c":"105.00""#, r#""c":"x""#));
        m
    } else {
        (4..10).map(kline).collect()
    };
    for m in messages {
        if socket.send(Message::Text(m.into())).await.is_err() {
            return;
        }
    }
    if connection == 0 {
        return; // dropped: the connection breaks without a close frame
    }
    while let Some(Ok(_)) = socket.recv().await {}
}

fn spec(dir: &Path, port: u16) -> std::path::PathBuf {
    write_spec(
        dir,
        "ws.yaml",
        &format!(
            "name: ws-paper\nmode: paper\n\
             feed: {{type: websocket, url: \"ws://127.0.0.1:{port}/stream?streams=goog@kline_1m\", preset: binance_kline, backoff_ms: 50, max_backoff_ms: 200}}\n\
             instruments: [{{symbol: GOOG, price_precision: 2, size_precision: 0}}]\n\
             strategy: {{name: sma_cross, params: {{fast: 2, slow: 3, quantity: 10}}}}\n\
             execution: {{fill_model: bar_close, fee_bps: 0}}\n\
             account: {{initial_cash: 100000, currency: USD}}\n"
        ),
    )
}

fn lines(path: &Path) -> Vec<serde_json::Value> {
    std::fs::read_to_string(path)
        .unwrap_or_default()
        .lines()
        .filter_map(|l| serde_json::from_str(l).ok())
        .collect()
}

#[test]
fn a_paper_run_on_a_websocket_feed_reconnects_and_processes_no_bar_twice() {
    let runtime = tokio::runtime::Runtime::new().unwrap();
    let connections = Arc::new(AtomicUsize::new(0));
    let counter = connections.clone();
    let app = axum::Router::new().route(
        "/stream",
        axum::routing::get(move |ws: WebSocketUpgrade| {
            let n = counter.fetch_add(1, Ordering::SeqCst);
            async move { ws.on_upgrade(move |socket| stream(socket, n)) }
        }),
    );
    let listener = runtime
        .block_on(tokio::net::TcpListener::bind("127.0.0.1:0"))
        .unwrap();
    let port = listener.local_addr().unwrap().port();
    runtime.spawn(async move { axum::serve(listener, app).await });

    let data = tempfile::tempdir().unwrap();
    let spec = spec(data.path(), port);

    // Without the allow-list the loopback address is refused, naming the field.
    let out = tradeloom(data.path(), &["run", spec.to_str().unwrap()]);
    assert_eq!(
        out.status.code(),
        Some(2),
        "{}{}",
        stdout(&out),
        stderr(&out)
    );
    let err = stderr(&out);
    assert!(
        err.contains("ws.yaml:3: feed.url: ws://127.0.0.1:"),
        "{err}"
    );
    assert!(err.contains("is blocked (loopback"), "{err}");
    assert!(
        !err.contains("streams="),
        "the URL's query is not echoed: {err}"
    );
    assert_eq!(connections.load(Ordering::SeqCst), 0);

    let child = Command::new(env!("CARGO_BIN_EXE_tradeloom"))
        .args(["run", spec.to_str().unwrap(), "--http-allow"])
        .arg(format!("127.0.0.1:{port}"))
        .arg("--data-dir")
        .arg(data.path())
        .current_dir(repo())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let bound = Instant::now() + Duration::from_secs(60);
    let dir = loop {
        assert!(Instant::now() < bound, "no run folder");
        let found = std::fs::read_dir(data.path().join("runs"))
            .ok()
            .and_then(|mut d| d.next())
            .and_then(|e| e.ok())
            .map(|e| e.path());
        if let Some(dir) = found {
            break dir;
        }
        std::thread::sleep(Duration::from_millis(20));
    };
    let bar_inputs = |dir: &Path| -> Vec<i64> {
        lines(&dir.join("state/inputs.jsonl"))
            .iter()
            .filter(|l| l["kind"] == "bar")
            .map(|l| l["bar"]["ts"].as_i64().unwrap())
            .collect()
    };
    while bar_inputs(&dir).len() < 10 {
        assert!(
            Instant::now() < bound,
            "bars so far: {:?}",
            bar_inputs(&dir)
        );
        std::thread::sleep(Duration::from_millis(20));
    }
    // The server is silent now: the health monitor's `paper:*` feed goes stale.
    std::fs::write(
        data.path().join("health.yaml"),
        "feeds:\n  - run: \"paper:*\"\n    max_age: 2s\n    dead_after: 1h\n",
    )
    .unwrap();
    let run_id = dir.file_name().unwrap().to_string_lossy().into_owned();
    let key = format!("paper:{run_id}");
    // (Right after the start feed.json may still say `connected: false`, also stale; wait for
    // the silence itself.)
    let report = loop {
        assert!(Instant::now() < bound, "the feed never went stale");
        let out = tradeloom(data.path(), &["health", "--json"]);
        assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
        let report: serde_json::Value = serde_json::from_str(&stdout(&out)).unwrap();
        let error = report["details"]["feeds"][&key]["error"]
            .as_str()
            .unwrap_or("");
        if error.starts_with("no event for ") {
            break report;
        }
        std::thread::sleep(Duration::from_millis(50));
    };
    assert_eq!(report["sensors"]["m3_data_freshness"], 0.7, "{report}");
    let feed = &report["details"]["feeds"][&key];
    assert_eq!(feed["state"], "stale", "{report}");
    assert_eq!(feed["kind"], "websocket");
    assert_eq!(feed["connected"], true);
    assert_eq!(feed["malformed"], 1);
    let out = tradeloom(data.path(), &["health"]);
    let text = stdout(&out);
    assert!(
        text.lines().any(|l| l.starts_with("m3_data_freshness")
            && l.contains("0.70")
            && l.contains(&format!("paper:{run_id} stale"))),
        "{text}"
    );

    // Ten bars processed: the resent kline 4 came before 5–9, so it has been seen too.
    crate::sigterm(child.id());
    let out = child.wait_with_output().unwrap();
    assert!(
        out.status.success(),
        "exit 0: {}{}",
        stdout(&out),
        stderr(&out)
    );

    // Every bar once, in order: 0..9 (kline 4 was received twice).
    let expected: Vec<i64> = (0..10).map(|i| (T0 + i * MINUTE) * 1_000_000).collect();
    assert_eq!(bar_inputs(&dir), expected);
    assert_eq!(connections.load(Ordering::SeqCst), 2, "one reconnect");

    let journal = lines(&dir.join("journal.jsonl"));
    let malformed: Vec<&serde_json::Value> = journal
        .iter()
        .filter(|l| l["event"] == "feed_malformed")
        .collect();
    assert_eq!(malformed.len(), 1, "{malformed:?}");
    assert_eq!(
        malformed[0]["reason"],
        "field `k.c`: `x` is not a decimal number"
    );
    let statuses: Vec<bool> = journal
        .iter()
        .filter(|l| l["event"] == "feed_status")
        .map(|l| l["connected"].as_bool().unwrap())
        .collect();
    assert_eq!(statuses, [true, false, true]);
    let feed: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(dir.join("state/feed.json")).unwrap())
            .unwrap();
    assert_eq!(feed["kind"], "websocket");
    assert_eq!(feed["malformed"], 1);
    assert_eq!(feed["stopped"], true);
    let meta: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(dir.join("metadata.json")).unwrap()).unwrap();
    assert_eq!(meta["status"], "completed");
    assert_eq!(meta["stop_reason"], "stopped");
    let run_id = meta["run_id"].as_str().unwrap();
    let out = tradeloom(data.path(), &["verify", run_id]);
    assert!(out.status.success(), "{}{}", stdout(&out), stderr(&out));
    let out = tradeloom(data.path(), &["reconcile", run_id, "--json"]);
    assert!(out.status.success(), "{}{}", stdout(&out), stderr(&out));
}
