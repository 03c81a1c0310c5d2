//! The runs API over real HTTP: `POST /runs` starts a backtest that completes in the server;
//! `GET /runs` lists, filters and pages; `GET /runs/{id}` shows spec, metrics and artifacts;
//! `GET /runs/{id}/equity` downsamples keeping the global extremes with exact decimal strings;
//! fills/orders/trades are paged; roles, confined data paths and every bad input give 4xx JSON.

use std::path::Path;
use std::time::{Duration, Instant};

use reqwest::StatusCode as Status;
use serde_json::{Value, json};
use tradeloom_server::AuthMode;
use tradeloom_store::Role;

use crate::harness::{Server, key, serve};

const GOOG: &str = concat!(
    env!("CARGO_MANIFEST_DIR"),
    "/../../examples/data/goog_1d.csv"
);

/// A backtest spec named `name` over `bars/goog.csv` of the data dir.
fn backtest_spec(name: &str, data_path: &str) -> String {
    format!(
        "name: {name}\nmode: backtest\ninstruments: [{{symbol: GOOG, price_precision: 2, size_precision: 0}}]\n\
         data: [{{symbol: GOOG, path: {data_path}}}]\n\
         strategy: {{name: sma_cross, params: {{fast: 10, slow: 20, quantity: 10}}}}\n\
         execution: {{fill_model: next_open, fee_bps: 0, slippage_bps: 0}}\n\
         account: {{initial_cash: 100000, currency: USD}}\n"
    )
}

/// Copies the GOOG bars into the server's data dir as `bars/goog.csv`.
fn seed_bars(data_dir: &Path) {
    std::fs::create_dir_all(data_dir.join("bars")).unwrap();
    std::fs::copy(GOOG, data_dir.join("bars/goog.csv")).unwrap();
}

async fn call(
    http: &reqwest::Client,
    method: reqwest::Method,
    url: String,
    key: Option<&str>,
    body: Option<Value>,
) -> (Status, Value) {
    let mut request = http.request(method, url);
    if let Some(k) = key {
        request = request.bearer_auth(k);
    }
    if let Some(b) = body {
        request = request.json(&b);
    }
    let response = request.send().await.unwrap();
    let status = response.status();
    let text = response.text().await.unwrap();
    let value = serde_json::from_str(&text).unwrap_or_else(|e| panic!("{status}: {e}: {text}"));
    (status, value)
}

async fn get(s: &Server, path: &str) -> (Status, Value) {
    call(
        &reqwest::Client::new(),
        reqwest::Method::GET,
        format!("{}{path}", s.base),
        None,
        None,
    )
    .await
}

async fn post(s: &Server, path: &str, body: Value) -> (Status, Value) {
    call(
        &reqwest::Client::new(),
        reqwest::Method::POST,
        format!("{}{path}", s.base),
        None,
        Some(body),
    )
    .await
}

/// Asserts the JSON error shape with `code` at `status`; returns the body.
fn error(got: (Status, Value), status: Status, code: &str) -> Value {
    let (s, v) = got;
    assert_eq!((s, v["error"].as_str()), (status, Some(code)), "{v}");
    assert!(v["message"].as_str().is_some_and(|m| !m.is_empty()), "{v}");
    v
}

/// Polls `GET /runs/{id}` until the run is no longer running.
async fn until_finished(s: &Server, id: &str) -> Value {
    let deadline = Instant::now() + Duration::from_secs(120);
    loop {
        let (status, v) = get(s, &format!("/runs/{id}")).await;
        assert_eq!(status, Status::OK, "{v}");
        if v["status"] != "running" && v["active"] == false {
            return v;
        }
        assert!(Instant::now() < deadline, "run {id} did not finish: {v}");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

async fn start_backtest(s: &Server, name: &str) -> String {
    let (status, v) = post(
        s,
        "/runs",
        json!({"spec": backtest_spec(name, "bars/goog.csv")}),
    )
    .await;
    assert_eq!(status, Status::ACCEPTED, "{v}");
    assert_eq!(
        (v["mode"].as_str(), v["status"].as_str()),
        (Some("backtest"), Some("running"))
    );
    v["run_id"].as_str().unwrap().to_string()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_posted_backtest_completes_and_reads_back() {
    let s = serve(|s| s).await;
    seed_bars(&s.data_dir());
    let id = start_backtest(&s, "goog-api").await;
    let run = until_finished(&s, &id).await;
    assert_eq!(run["status"], "completed", "{run}");
    assert_eq!(run["mode"], "backtest");
    assert_eq!(
        run["metrics"]["final_equity"], "112583.70",
        "the golden result"
    );
    assert!(run["spec"]["yaml"].as_str().unwrap().contains("goog-api"));
    assert_eq!(run["data"][0]["path"], "bars/goog.csv");
    let artifacts: Vec<&str> = run["artifacts"]
        .as_array()
        .unwrap()
        .iter()
        .map(|a| a["name"].as_str().unwrap())
        .collect();
    for name in [
        "journal.jsonl",
        "fills.csv",
        "equity.parquet",
        "metrics.json",
    ] {
        assert!(artifacts.contains(&name), "{artifacts:?}");
    }

    // Fills, paged: every row once, exact decimal strings.
    let fills_total = run["metrics"]["fills"].as_u64().unwrap();
    assert!(fills_total > 10, "{fills_total}");
    let mut seen = Vec::new();
    let mut offset = Some(0u64);
    while let Some(o) = offset {
        let (status, page) = get(&s, &format!("/runs/{id}/fills?limit=7&offset={o}")).await;
        assert_eq!(status, Status::OK, "{page}");
        assert_eq!(page["total"], fills_total);
        assert_eq!(page["complete"], true);
        assert!(page["rows"].as_array().unwrap().len() <= 7);
        seen.extend(page["rows"].as_array().unwrap().iter().cloned());
        offset = page["next_offset"].as_u64();
    }
    assert_eq!(seen.len() as u64, fills_total);
    let ids: std::collections::BTreeSet<&str> = seen
        .iter()
        .map(|f| f["fill_id"].as_str().unwrap())
        .collect();
    assert_eq!(ids.len(), seen.len(), "no fill twice");
    assert!(
        seen[0]["price"].is_string() && seen[0]["quantity"] == "10",
        "{}",
        seen[0]
    );
    for artifact in ["orders", "trades"] {
        let (status, page) = get(&s, &format!("/runs/{id}/{artifact}?limit=3")).await;
        assert_eq!(status, Status::OK, "{page}");
        assert_eq!(page["rows"].as_array().unwrap().len(), 3, "{page}");
        assert_eq!(page["next_offset"], 3);
    }

    // The whole curve, then downsampled: at most max_points, first/last and the global
    // extremes kept, the same exact strings.
    let (status, full) = get(&s, &format!("/runs/{id}/equity?max_points=100000")).await;
    assert_eq!(status, Status::OK, "{full}");
    assert_eq!(full["downsampled"], false);
    let all = full["points"].as_array().unwrap();
    assert_eq!(all.len() as u64, full["rows"].as_u64().unwrap());
    assert!(all.len() > 2000, "{}", all.len());
    let cents = |p: &Value| -> i64 {
        let text = p["equity"].as_str().unwrap();
        let (_, frac) = text.split_once('.').unwrap();
        assert_eq!(frac.len(), 2, "exact to the cent: {text}");
        text.replace('.', "").parse::<i64>().unwrap()
    };
    let min = all.iter().min_by_key(|p| cents(p)).unwrap();
    let max = all.iter().max_by_key(|p| cents(p)).unwrap();
    assert_eq!(all.last().unwrap()["equity"], "112583.70");
    for max_points in [4, 50, 333] {
        let (status, curve) = get(&s, &format!("/runs/{id}/equity?max_points={max_points}")).await;
        assert_eq!(status, Status::OK, "{curve}");
        assert_eq!(curve["downsampled"], true);
        let points = curve["points"].as_array().unwrap();
        assert!(
            points.len() <= max_points,
            "{} > {max_points}",
            points.len()
        );
        assert!(points.contains(min), "the trough {min} at {max_points}");
        assert!(points.contains(max), "the peak {max} at {max_points}");
        assert_eq!(points.first(), all.first());
        assert_eq!(points.last(), all.last());
        let ts: Vec<&str> = points.iter().map(|p| p["ts"].as_str().unwrap()).collect();
        assert!(ts.windows(2).all(|w| w[0] < w[1]), "time order");
    }
    assert_eq!(full["initial_cash"], "100000.00");

    // Stopping a finished backtest.
    error(
        post(&s, &format!("/runs/{id}/stop"), json!({})).await,
        Status::CONFLICT,
        "run_finished",
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn runs_are_listed_newest_first_filtered_and_paged() {
    let s = serve(|s| s).await;
    seed_bars(&s.data_dir());
    let mut ids = Vec::new();
    for name in ["alpha-one", "beta-two", "alpha-three"] {
        let id = start_backtest(&s, name).await;
        until_finished(&s, &id).await;
        ids.push(id);
    }
    let (status, all) = get(&s, "/runs").await;
    assert_eq!(status, Status::OK, "{all}");
    let listed: Vec<&str> = all["runs"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| r["run_id"].as_str().unwrap())
        .collect();
    let newest_first: Vec<&str> = ids.iter().rev().map(String::as_str).collect();
    assert_eq!(listed, newest_first);
    assert_eq!(all["total"], 3);
    assert_eq!(all["runs"][0]["final_equity"], "112583.70");

    let (_, page) = get(&s, "/runs?limit=2").await;
    assert_eq!(page["runs"].as_array().unwrap().len(), 2);
    assert_eq!(page["next_offset"], 2);
    let (_, rest) = get(&s, "/runs?limit=2&offset=2").await;
    assert_eq!(rest["runs"][0]["run_id"], ids[0].as_str());
    assert_eq!(rest["next_offset"], Value::Null);

    let (_, alpha) = get(&s, "/runs?name=ALPHA&mode=backtest&status=completed").await;
    let names: Vec<&str> = alpha["runs"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| r["name"].as_str().unwrap())
        .collect();
    assert_eq!(names, ["alpha-three", "alpha-one"]);
    let (_, paper) = get(&s, "/runs?mode=paper").await;
    assert_eq!(paper["total"], 0);
    let (_, failed) = get(&s, "/runs?status=failed").await;
    assert_eq!(failed["total"], 0);

    // A unique prefix and `latest` name a run too.
    let (status, latest) = get(&s, "/runs/latest").await;
    assert_eq!(
        (status, latest["run_id"].as_str()),
        (Status::OK, Some(ids[2].as_str()))
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bad_inputs_are_4xx_json_naming_the_field() {
    let s = serve(|s| s).await;
    seed_bars(&s.data_dir());
    let outside = tempfile::tempdir().unwrap();
    let secret = outside.path().join("secret.csv");
    std::fs::write(&secret, "TOPSECRET-VALUE,1,2\n").unwrap();
    std::fs::write(
        s.data_dir().join("bars/junk.csv"),
        "TOPSECRET-JUNK;x\n1;2\n",
    )
    .unwrap();

    for (q, param) in [
        ("mode=live", "mode"),
        ("status=done", "status"),
        ("limit=0", "limit"),
        ("limit=501", "limit"),
    ] {
        let v = error(
            get(&s, &format!("/runs?{q}")).await,
            Status::BAD_REQUEST,
            "invalid_query",
        );
        assert_eq!(v["details"]["param"], param, "{v}");
    }
    error(
        get(&s, "/runs?sort=x").await,
        Status::BAD_REQUEST,
        "invalid_query",
    );
    error(
        get(&s, "/runs/nope").await,
        Status::NOT_FOUND,
        "run_not_found",
    );
    error(
        get(&s, "/runs/nope/equity").await,
        Status::NOT_FOUND,
        "run_not_found",
    );
    error(
        get(&s, "/runs/nope/fills").await,
        Status::NOT_FOUND,
        "run_not_found",
    );
    error(
        post(&s, "/runs/nope/stop", json!({})).await,
        Status::NOT_FOUND,
        "run_not_found",
    );

    error(
        post(&s, "/runs", json!({})).await,
        Status::BAD_REQUEST,
        "invalid_body",
    );
    error(
        post(&s, "/runs", json!({"spec": "x", "extra": 1})).await,
        Status::BAD_REQUEST,
        "invalid_body",
    );
    let v = error(
        post(&s, "/runs", json!({"spec": ""})).await,
        Status::BAD_REQUEST,
        "invalid_spec",
    );
    assert_eq!(v["details"]["field"], "spec");
    let v = error(
        post(
            &s,
            "/runs",
            json!({"spec": "name: x\nmode: backtest\nbogus: 1\n"}),
        )
        .await,
        Status::BAD_REQUEST,
        "invalid_spec",
    );
    assert!(
        v["details"]["place"]
            .as_str()
            .unwrap()
            .starts_with("spec.yaml:"),
        "{v}"
    );
    let spec = backtest_spec("x", "bars/goog.csv").replace("fast: 10", "fast: 0");
    let v = error(
        post(&s, "/runs", json!({"spec": spec})).await,
        Status::BAD_REQUEST,
        "invalid_spec",
    );
    assert!(v["message"].as_str().unwrap().contains("fast"), "{v}");

    let secret_text = secret.display().to_string();
    for (path, reason) in [
        ("../bars/goog.csv", "`..`"),
        (secret_text.as_str(), "outside"),
        ("/etc/passwd", "outside"),
        ("bars/missing.csv", "does not exist"),
        ("bars", "folder"),
    ] {
        let v = error(
            post(&s, "/runs", json!({"spec": backtest_spec("x", path)})).await,
            Status::BAD_REQUEST,
            "invalid_data_path",
        );
        assert_eq!(v["details"]["field"], "spec.data[0].path", "{v}");
        assert!(
            v["message"].as_str().unwrap().contains(reason),
            "{path}: {v}"
        );
        assert!(!v.to_string().contains("TOPSECRET"), "{v}");
    }
    let v = error(
        post(
            &s,
            "/runs",
            json!({"spec": backtest_spec("x", "bars/junk.csv")}),
        )
        .await,
        Status::BAD_REQUEST,
        "invalid_market_data",
    );
    assert_eq!(v["details"]["field"], "spec.data[0].path", "{v}");
    assert!(
        !v.to_string().contains("TOPSECRET"),
        "never the file's contents: {v}"
    );
    // Nothing was started by any of them.
    let (_, all) = get(&s, "/runs").await;
    assert_eq!(all["total"], 0, "{all}");

    let id = start_backtest(&s, "for-queries").await;
    until_finished(&s, &id).await;
    for q in ["max_points=3", "max_points=100001", "max_points=x"] {
        error(
            get(&s, &format!("/runs/{id}/equity?{q}")).await,
            Status::BAD_REQUEST,
            "invalid_query",
        );
    }
    for q in ["limit=0", "limit=5001", "offset=-1"] {
        error(
            get(&s, &format!("/runs/{id}/fills?{q}")).await,
            Status::BAD_REQUEST,
            "invalid_query",
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_viewer_reads_runs_but_cannot_start_or_stop_them() {
    let s = serve(|s| s.with_auth(AuthMode::Required)).await;
    seed_bars(&s.data_dir());
    let viewer = key(&*s.store, "viewer", Role::Viewer).await;
    let operator = key(&*s.store, "operator", Role::Operator).await;
    let http = reqwest::Client::new();
    let spec = json!({"spec": backtest_spec("roles", "bars/goog.csv")});
    let (status, v) = call(
        &http,
        reqwest::Method::POST,
        format!("{}/runs", s.base),
        Some(&viewer),
        Some(spec.clone()),
    )
    .await;
    let v = error((status, v), Status::FORBIDDEN, "forbidden");
    assert_eq!(v["details"]["required_role"], "operator", "{v}");
    let (status, v) = call(
        &http,
        reqwest::Method::POST,
        format!("{}/runs", s.base),
        None,
        Some(spec.clone()),
    )
    .await;
    error((status, v), Status::UNAUTHORIZED, "unauthorized");
    let (status, started) = call(
        &http,
        reqwest::Method::POST,
        format!("{}/runs", s.base),
        Some(&operator),
        Some(spec),
    )
    .await;
    assert_eq!(status, Status::ACCEPTED, "{started}");
    let id = started["run_id"].as_str().unwrap();
    let (status, v) = call(
        &http,
        reqwest::Method::POST,
        format!("{}/runs/{id}/stop", s.base),
        Some(&viewer),
        None,
    )
    .await;
    error((status, v), Status::FORBIDDEN, "forbidden");
    let (status, list) = call(
        &http,
        reqwest::Method::GET,
        format!("{}/runs", s.base),
        Some(&viewer),
        None,
    )
    .await;
    assert_eq!(status, Status::OK, "{list}");
    assert_eq!(list["runs"][0]["run_id"], id);
}

/// A paper spec replaying the first `bars` days of GOOG at `speed` (days per second × 86,400).
fn paper_spec(name: &str, speed: u64) -> String {
    format!(
        "name: {name}\nmode: paper\nfeed: {{type: replay, speed: {speed}}}\n\
         instruments: [{{symbol: GOOG, price_precision: 2, size_precision: 0}}]\n\
         data: [{{symbol: GOOG, path: bars/goog_short.csv}}]\n\
         strategy: {{name: sma_cross, params: {{fast: 3, slow: 6, quantity: 10}}}}\n\
         execution: {{fill_model: next_open}}\n\
         account: {{initial_cash: 100000, currency: USD}}\n"
    )
}

/// The first `rows` bars of GOOG as `bars/goog_short.csv`.
fn seed_short_bars(data_dir: &Path, rows: usize) {
    std::fs::create_dir_all(data_dir.join("bars")).unwrap();
    let text = std::fs::read_to_string(GOOG).unwrap();
    let short: Vec<&str> = text.lines().take(rows + 1).collect();
    std::fs::write(
        data_dir.join("bars/goog_short.csv"),
        short.join("\n") + "\n",
    )
    .unwrap();
}

type Ws =
    tokio_tungstenite::WebSocketStream<tokio_tungstenite::MaybeTlsStream<tokio::net::TcpStream>>;

async fn ws_connect(s: &Server, query: &str) -> Ws {
    let url = format!("ws://{}/ws{query}", s.addr);
    tokio_tungstenite::connect_async(url.as_str())
        .await
        .unwrap()
        .0
}

/// The next event message (pings skipped), within 20 s.
async fn ws_next(ws: &mut Ws) -> Value {
    use futures_util::StreamExt;
    use tokio_tungstenite::tungstenite::Message;
    loop {
        let message = tokio::time::timeout(Duration::from_secs(20), ws.next())
            .await
            .expect("an event within 20 s")
            .expect("the stream is open")
            .expect("a valid frame");
        match message {
            Message::Text(text) => return serde_json::from_str(&text).unwrap(),
            Message::Ping(_) | Message::Pong(_) => {}
            other => panic!("unexpected frame {other:?}"),
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_posted_paper_run_streams_events_resumes_by_seq_and_stops_sealed() {
    let s = serve(|s| s).await;
    seed_short_bars(&s.data_dir(), 600);
    // 100 days a second: 6 s for the whole file, stopped well before.
    let (status, started) = post(
        &s,
        "/runs",
        json!({"spec": paper_spec("paper-api", 8_640_000)}),
    )
    .await;
    assert_eq!(status, Status::ACCEPTED, "{started}");
    assert_eq!(started["mode"], "paper");
    let id = started["run_id"].as_str().unwrap().to_string();

    let (_, run) = get(&s, &format!("/runs/{id}")).await;
    assert_eq!(
        (run["mode"].as_str(), run["active"].as_bool()),
        (Some("paper"), Some(true)),
        "{run}"
    );
    let (_, listed) = get(&s, "/runs?mode=paper").await;
    assert_eq!(listed["runs"][0]["run_id"], id.as_str());
    error(
        get(&s, &format!("/runs/{id}/equity")).await,
        Status::CONFLICT,
        "run_in_progress",
    );

    // Live: order, fill and equity events of this run only, in increasing seq.
    let mut ws = ws_connect(&s, &format!("?engine_run_id={id}&after_seq=0")).await;
    let mut received: Vec<Value> = Vec::new();
    let kinds_seen = |r: &[Value], k: &str| r.iter().filter(|e| e["kind"] == k).count();
    while kinds_seen(&received, "fill") < 2 || kinds_seen(&received, "equity") < 2 {
        let event = ws_next(&mut ws).await;
        assert_eq!(event["engine_run_id"], id.as_str(), "{event}");
        assert_eq!(
            (event["run_id"].clone(), event["job_id"].clone()),
            (Value::Null, Value::Null)
        );
        received.push(event);
    }
    assert!(
        received
            .windows(2)
            .all(|w| w[0]["seq"].as_i64() < w[1]["seq"].as_i64())
    );
    let order = received.iter().find(|e| e["kind"] == "order").unwrap();
    assert!(
        order["payload"]["event"]
            .as_str()
            .unwrap()
            .starts_with("order_"),
        "{order}"
    );
    assert!(order["payload"]["wall_ts"].is_string(), "{order}");
    let fill = received.iter().find(|e| e["kind"] == "fill").unwrap();
    assert_eq!(fill["payload"]["event"], "order_filled", "{fill}");
    let equity = received.iter().find(|e| e["kind"] == "equity").unwrap();
    for field in ["cash", "equity", "gross_exposure"] {
        let text = equity["payload"][field]
            .as_str()
            .unwrap_or_else(|| panic!("{equity}"));
        assert!(
            text.parse::<f64>().is_ok() && text.contains('.'),
            "exact decimal text: {equity}"
        );
    }
    drop(ws);

    // Resume: reconnecting after the seq of an event in the middle gives exactly the events
    // after it, none twice, none skipped.
    let middle = received.len() / 2;
    let after = received[middle]["seq"].as_i64().unwrap();
    let mut ws = ws_connect(&s, &format!("?engine_run_id={id}&after_seq={after}")).await;
    for expected in &received[middle + 1..] {
        assert_eq!(&ws_next(&mut ws).await, expected);
    }

    // Stop: graceful, completed, sealed.
    let (status, stopped) = post(&s, &format!("/runs/{id}/stop"), json!({})).await;
    assert_eq!(status, Status::OK, "{stopped}");
    assert_eq!(
        (stopped["status"].as_str(), stopped["stop_reason"].as_str()),
        (Some("completed"), Some("stopped"))
    );
    let run = until_finished(&s, &id).await;
    assert_eq!(run["status"], "completed", "{run}");
    assert_eq!(run["stop_reason"], "stopped");
    let dir = s.data_dir().join("runs").join(&id);
    let report = tradeloom_runs::verify_run(&dir).unwrap();
    assert!(
        report.ok(),
        "every hash matches: {:?}",
        report.failures().collect::<Vec<_>>()
    );
    // The stream ends the run with `run_finished`, after every fill it wrote.
    let mut rest = Vec::new();
    loop {
        let event = ws_next(&mut ws).await;
        let done = event["kind"] == "run_finished";
        rest.push(event);
        if done {
            break;
        }
    }
    assert_eq!(rest.last().unwrap()["payload"]["status"], "completed");
    let fills_streamed = received[middle + 1..]
        .iter()
        .chain(&received[..=middle])
        .chain(&rest)
        .filter(|e| e["kind"] == "fill")
        .count() as u64;
    let (_, fills) = get(&s, &format!("/runs/{id}/fills?limit=1")).await;
    assert_eq!(
        fills["total"].as_u64(),
        Some(fills_streamed),
        "one fill event per fill"
    );
    assert!(
        fills["columns"]
            .as_array()
            .unwrap()
            .contains(&json!("wall_ts")),
        "{fills}"
    );
    let (status, curve) = get(&s, &format!("/runs/{id}/equity?max_points=10")).await;
    assert_eq!(status, Status::OK, "{curve}");
    assert!(curve["points"].as_array().unwrap().len() <= 10);

    // Stopped already.
    error(
        post(&s, &format!("/runs/{id}/stop"), json!({})).await,
        Status::CONFLICT,
        "run_finished",
    );
    // A backtest cannot be stopped while it runs, and an unknown engine run has no stream.
    error(
        get(&s, "/ws?engine_run_id=nope").await,
        Status::NOT_FOUND,
        "run_not_found",
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_paper_spec_with_a_bad_feed_is_refused_naming_the_field() {
    let s = serve(|s| s).await;
    seed_short_bars(&s.data_dir(), 50);
    let spec = paper_spec("bad", 1).replace("speed: 1", "speed: fast");
    let v = error(
        post(&s, "/runs", json!({"spec": spec})).await,
        Status::BAD_REQUEST,
        "invalid_spec",
    );
    assert!(v["message"].as_str().unwrap().contains("speed"), "{v}");
    let spec = paper_spec("bad", 1).replace("feed: {type: replay, speed: 1}\n", "");
    let v = error(
        post(&s, "/runs", json!({"spec": spec})).await,
        Status::BAD_REQUEST,
        "invalid_spec",
    );
    assert!(v["message"].as_str().unwrap().contains("feed"), "{v}");
    let spec = paper_spec("bad", 1).replace(
        "feed: {type: replay, speed: 1}",
        "feed: {type: scan_dir, path: ../scans}",
    );
    let v = error(
        post(&s, "/runs", json!({"spec": spec})).await,
        Status::BAD_REQUEST,
        "invalid_data_path",
    );
    assert_eq!(v["details"]["field"], "spec.feed.path", "{v}");
    let (_, all) = get(&s, "/runs").await;
    assert_eq!(all["total"], 0, "{all}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_finished_run_serves_its_chart_and_its_journal_page_by_page() {
    let s = serve(|s| s).await;
    seed_bars(&s.data_dir());
    let id = start_backtest(&s, "goog-chart").await;
    let run = until_finished(&s, &id).await;
    assert_eq!(run["status"], "completed", "{run}");

    let (status, chart) = get(&s, &format!("/runs/{id}/chart")).await;
    assert_eq!(status, Status::OK, "{chart}");
    let goog = &chart["instruments"][0];
    assert_eq!(goog["symbol"], "GOOG");
    // 2,148 daily bars fit in the 4,096 candles: one bar each, the first being the first bar.
    assert_eq!(goog["bars_per_candle"], 1);
    assert_eq!(goog["candles"].as_array().unwrap().len(), 2148);
    assert_eq!(
        goog["candles"][0],
        json!([1_092_873_600, 100.0, 104.06, 95.96, 100.34])
    );
    assert_eq!(chart["fills_total"], run["metrics"]["fills"]);
    assert_eq!(chart["fills"].as_array().unwrap().len(), 187);

    let (status, first) = get(&s, &format!("/runs/{id}/journal?limit=2")).await;
    assert_eq!(status, Status::OK, "{first}");
    assert_eq!(first["entries"][0]["event"], "run_started");
    assert_eq!(first["entries"].as_array().unwrap().len(), 2);
    assert_eq!(first["complete"], true);
    let total = first["total"].as_u64().unwrap();
    assert_eq!(first["next_offset"], 2);
    let (_, last) = get(
        &s,
        &format!("/runs/{id}/journal?limit=5&offset={}", total - 1),
    )
    .await;
    assert_eq!(last["entries"].as_array().unwrap().len(), 1);
    assert_eq!(last["next_offset"], Value::Null);
    assert_eq!(
        last["entries"][0]["seq"], total,
        "entries are the journal's lines in order"
    );

    error(
        get(&s, &format!("/runs/{id}/journal?limit=0")).await,
        Status::BAD_REQUEST,
        "invalid_query",
    );
    let missing = error(
        get(&s, "/runs/no-such-run/chart").await,
        Status::NOT_FOUND,
        "run_not_found",
    );
    let message = missing["message"].as_str().unwrap();
    assert!(
        !message.contains(s.data_dir().to_str().unwrap()),
        "no server path in an error: {message}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_operator_orders_into_a_paper_run_that_accepts_external_orders() {
    let s = serve(|s| s.with_auth(AuthMode::Required)).await;
    seed_short_bars(&s.data_dir(), 600);
    let viewer = key(&*s.store, "viewer", Role::Viewer).await;
    let operator = key(&*s.store, "operator", Role::Operator).await;
    let http = reqwest::Client::new();
    let as_key = |k: &str, method: reqwest::Method, path: String, body: Option<Value>| {
        let (http, base, k) = (http.clone(), s.base.clone(), k.to_string());
        async move { call(&http, method, format!("{base}{path}"), Some(&k), body).await }
    };
    // A desk: manual, cash, taking external orders; 10 days a second (60 s for the file).
    let spec = paper_spec("desk", 864_000)
        .replace(
            "strategy: {name: sma_cross, params: {fast: 3, slow: 6, quantity: 10}}",
            "strategy: {name: manual}\nexternal_orders: true",
        )
        .replace("currency: USD}", "currency: USD, type: cash}");
    let (status, started) = as_key(
        &operator,
        reqwest::Method::POST,
        "/runs".into(),
        Some(json!({"spec": spec})),
    )
    .await;
    assert_eq!(status, Status::ACCEPTED, "{started}");
    let id = started["run_id"].as_str().unwrap().to_string();
    // Its first bars.
    tokio::time::sleep(Duration::from_millis(500)).await;
    let order = |body: Value| {
        as_key(
            &operator,
            reqwest::Method::POST,
            format!("/runs/{id}/orders"),
            Some(body),
        )
    };

    let (status, filled) = order(json!({"symbol": "GOOG", "side": "buy", "quantity": "10",
        "client_order_id": "first", "wait_ms": 10000}))
    .await;
    assert_eq!(status, Status::OK, "{filled}");
    assert_eq!(filled["status"], "filled", "{filled}");
    assert_eq!(filled["fills"][0]["quantity"], "10");
    // Bound to the key that sent it, whatever the body says.
    assert!(
        filled["source"].as_str().unwrap().starts_with("api:"),
        "{filled}"
    );
    assert_ne!(filled["source"], "api:anonymous");
    // The same id again: that order's state, nothing sent.
    let (status, again) = order(json!({"symbol": "GOOG", "side": "buy", "quantity": "10",
        "client_order_id": "first"}))
    .await;
    assert_eq!(status, Status::OK, "{again}");
    assert_eq!(again["order_id"], filled["order_id"]);
    // The run refuses what it cannot use: an answer, naming the field.
    let (status, refused) = order(json!({"symbol": "MSFT", "side": "buy", "quantity": "1"})).await;
    assert_eq!(status, Status::OK, "{refused}");
    assert_eq!(
        (refused["status"].as_str(), refused["code"].as_str()),
        (Some("refused"), Some("order.invalid")),
        "{refused}"
    );
    assert!(
        refused["reason"]
            .as_str()
            .unwrap()
            .contains("symbol: `MSFT`")
    );
    // Bad requests.
    error(
        order(json!({"symbol": "GOOG", "side": "short", "quantity": "1"})).await,
        Status::BAD_REQUEST,
        "invalid_body",
    );
    error(
        order(json!({"symbol": "GOOG", "side": "buy", "quantity": "1", "wait_ms": 60001})).await,
        Status::BAD_REQUEST,
        "invalid_order",
    );
    let bad = error(
        order(json!({"symbol": "GOOG", "side": "buy", "quantity": "1", "client_order_id": "../x"}))
            .await,
        Status::UNPROCESSABLE_ENTITY,
        "invalid_order",
    );
    assert_eq!(bad["details"]["field"], "client_order_id");
    // A viewer may not order.
    let (status, v) = as_key(
        &viewer,
        reqwest::Method::POST,
        format!("/runs/{id}/orders"),
        Some(json!({"symbol": "GOOG", "side": "buy", "quantity": "1"})),
    )
    .await;
    error((status, v), Status::FORBIDDEN, "forbidden");
    error(
        as_key(
            &operator,
            reqwest::Method::POST,
            "/runs/nope/orders".into(),
            Some(json!({"symbol": "GOOG", "side": "buy", "quantity": "1"})),
        )
        .await,
        Status::NOT_FOUND,
        "run_not_found",
    );
    // Stopped, it takes no more orders.
    let (status, stopped) = as_key(
        &operator,
        reqwest::Method::POST,
        format!("/runs/{id}/stop"),
        None,
    )
    .await;
    assert_eq!(status, Status::OK, "{stopped}");
    error(
        order(json!({"symbol": "GOOG", "side": "buy", "quantity": "1"})).await,
        Status::CONFLICT,
        "run_finished",
    );
    // The journal names the order and its source.
    let journal =
        std::fs::read_to_string(s.data_dir().join("runs").join(&id).join("journal.jsonl")).unwrap();
    let line: Value = journal
        .lines()
        .map(|l| serde_json::from_str::<Value>(l).unwrap())
        .find(|l| l["event"] == "external_order")
        .unwrap();
    assert_eq!(line["source"], filled["source"]);
}
