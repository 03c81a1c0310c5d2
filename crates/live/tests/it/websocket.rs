//! The WebSocket feed against a real WebSocket server on loopback that speaks Binance's kline
//! stream format: reconnects, duplicates after a reconnect, malformed messages, the guard.

use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use futures_util::{SinkExt, StreamExt};
use tokio::net::TcpListener;
use tradeloom_core::{Bar, Currency, Instrument, InstrumentId, Symbol, UnixNanos};
use tradeloom_live::websocket::WebsocketFeed;
use tradeloom_net::SsrfPolicy;
use tradeloom_net::tokio_tungstenite::tungstenite::Message;
use tradeloom_runs::paper::{
    Feed, FeedEvent, FeedPoll, FeedPosition, WebsocketFeedSpec, WebsocketPreset,
};

const T0: i64 = 1_767_225_600_000; // 2026-01-01T00:00:00Z in ms
const MINUTE: i64 = 60_000;

fn instruments() -> Vec<Instrument> {
    vec![
        Instrument::new(
            InstrumentId(0),
            Symbol::new("BTCUSDT").unwrap(),
            "binance",
            2,
            5,
            Currency::USD,
        )
        .unwrap(),
    ]
}

/// A closed (or open) 1-minute kline of BTCUSDT starting `i` minutes after T0, closing at
/// `100 + i`.
fn kline(i: i64, closed: bool) -> String {
    let t = T0 + i * MINUTE;
    format!(
        r#"{{"e":"kline","E":{},"s":"BTCUSDT","k":{{"t":{t},"T":{},"s":"BTCUSDT","i":"1m","f":1,"L":2,"o":"100.00","c":"{}.00","h":"200.00","l":"50.00","v":"1.5","n":2,"x":{closed},"q":"0","V":"0","Q":"0","B":"0"}}}}"#,
        t + MINUTE,
        t + MINUTE - 1,
        100 + i
    )
}

fn combined(message: &str) -> String {
    format!(r#"{{"stream":"btcusdt@kline_1m","data":{message}}}"#)
}

/// What one connection of the test server sends after reading the subscribe message; then it
/// either drops the connection (`hang_up`) or keeps it open.
struct Script {
    messages: Vec<String>,
    hang_up: bool,
}

/// A Binance-like kline server on a fresh loopback port: connection `n` plays `scripts[n]`
/// (the last one for any later connection). Every text message received is logged.
fn kline_server(
    runtime: &tokio::runtime::Runtime,
    scripts: Vec<Script>,
) -> (std::net::SocketAddr, Arc<Mutex<Vec<String>>>) {
    let received = Arc::new(Mutex::new(Vec::new()));
    let log = received.clone();
    let listener = runtime.block_on(TcpListener::bind("127.0.0.1:0")).unwrap();
    let addr = listener.local_addr().unwrap();
    let scripts = Arc::new(scripts);
    runtime.spawn(async move {
        let mut n = 0usize;
        while let Ok((stream, _)) = listener.accept().await {
            let script = n.min(scripts.len() - 1);
            n += 1;
            let (scripts, log) = (scripts.clone(), log.clone());
            tokio::spawn(async move {
                let mut ws = tradeloom_net::tokio_tungstenite::accept_async(stream)
                    .await
                    .unwrap();
                if let Some(Ok(Message::Text(t))) = ws.next().await {
                    log.lock().unwrap().push(t.to_string());
                    ws.send(Message::text(r#"{"result":null,"id":1}"#))
                        .await
                        .unwrap();
                }
                for m in &scripts[script].messages {
                    ws.send(Message::text(m.clone())).await.unwrap();
                }
                if scripts[script].hang_up {
                    // Dropped without a close frame: the connection just breaks.
                    drop(ws);
                } else {
                    while let Some(Ok(_)) = ws.next().await {}
                }
            });
        }
    });
    (addr, received)
}

fn spec(url: String) -> WebsocketFeedSpec {
    WebsocketFeedSpec {
        url,
        preset: Some(WebsocketPreset::BinanceKline),
        fields: None,
        subscribe: Some(r#"{"method":"SUBSCRIBE","params":["btcusdt@kline_1m"],"id":1}"#.into()),
        backoff_ms: Some(20),
        max_backoff_ms: Some(50),
    }
}

fn allowing(addr: std::net::SocketAddr) -> SsrfPolicy {
    SsrfPolicy {
        allow_hosts: vec![format!("127.0.0.1:{}", addr.port())],
        ..SsrfPolicy::default()
    }
}

/// Everything the feed delivered, until `done` says so (or a 30 s bound against hangs).
#[derive(Default, Debug)]
struct Seen {
    bars: Vec<Bar>,
    malformed: Vec<String>,
    statuses: Vec<(bool, String)>,
}

fn collect(feed: &mut WebsocketFeed, done: impl Fn(&Seen) -> bool) -> Seen {
    let mut seen = Seen::default();
    let bound = Instant::now() + Duration::from_secs(30);
    while !done(&seen) {
        assert!(Instant::now() < bound, "the feed stalled: {seen:?}");
        match feed.poll(Duration::from_millis(100)).unwrap() {
            FeedPoll::Event(FeedEvent::Bar(b)) => seen.bars.push(b),
            FeedPoll::Event(FeedEvent::Malformed { reason }) => seen.malformed.push(reason),
            FeedPoll::Event(FeedEvent::Status { connected, detail }) => {
                seen.statuses.push((connected, detail))
            }
            FeedPoll::Event(FeedEvent::Scan(_)) => panic!("a websocket feed delivers no scans"),
            FeedPoll::Idle => {}
            FeedPoll::Ended => panic!("the feed ended"),
            FeedPoll::Replayed { .. } => panic!("a websocket feed replays no data files"),
        }
    }
    seen
}

fn minutes(bars: &[Bar]) -> Vec<i64> {
    bars.iter()
        .map(|b| (b.ts.0 / 1_000_000 - T0) / MINUTE)
        .collect()
}

/// The server drops the connection mid-stream and, after the reconnect, resends the last
/// closed kline (as Binance does with the current kline): every bar is delivered exactly once
/// and in order; the open kline is no bar; the malformed message is reported naming its field
/// and the feed goes on; the subscribe message goes out on every connection.
#[test]
fn reconnects_after_a_disconnect_without_processing_a_bar_twice() {
    let runtime = tokio::runtime::Runtime::new().unwrap();
    let malformed = kline(9, true).replace(r#""c":"109.00""#, r#""c":"1O9.00""#);
    let (addr, received) = kline_server(
        &runtime,
        vec![
            Script {
                messages: vec![
                    kline(0, true),
                    kline(1, false),
                    kline(1, true),
                    malformed,
                    kline(2, true),
                ],
                hang_up: true,
            },
            Script {
                messages: vec![
                    combined(&kline(2, true)),
                    combined(&kline(3, false)),
                    combined(&kline(3, true)),
                    combined(&kline(4, true)),
                ],
                hang_up: false,
            },
        ],
    );
    let url = format!("ws://{addr}/stream?streams=btcusdt@kline_1m");
    let mut feed = WebsocketFeed::open(&spec(url), &instruments(), &allowing(addr)).unwrap();
    assert_eq!(feed.kind(), "websocket");
    let seen = collect(&mut feed, |s| s.bars.len() >= 5);
    assert_eq!(minutes(&seen.bars), [0, 1, 2, 3, 4]);
    assert_eq!(seen.bars[4].close.to_string(), "104.00");
    assert_eq!(seen.bars[0].ts, UnixNanos(T0 * 1_000_000));
    // The resent kline 2 was received again and skipped.
    assert_eq!(feed.duplicates_skipped(), 1);
    assert_eq!(
        seen.malformed,
        ["field `k.c`: `1O9.00` is not a decimal number"]
    );
    let connected: Vec<bool> = seen.statuses.iter().map(|(c, _)| *c).collect();
    assert_eq!(connected, [true, false, true], "{:?}", seen.statuses);
    assert!(
        seen.statuses[0]
            .1
            .starts_with(&format!("connected to ws://{addr} ")),
        "{:?}",
        seen.statuses
    );
    let lost = &seen.statuses[1].1;
    assert!(lost.ends_with("; reconnecting in 20 ms"), "{lost}");
    assert!(
        !lost.contains("streams="),
        "the URL's query is not shown: {lost}"
    );
    assert_eq!(
        received.lock().unwrap().len(),
        2,
        "one subscribe per connection"
    );
    assert!(received.lock().unwrap()[1].contains("SUBSCRIBE"));
    // Nothing more arrives: no bar is delivered twice.
    assert!(matches!(
        feed.poll(Duration::from_millis(300)).unwrap(),
        FeedPoll::Idle
    ));
}

/// After `resume_after`, bars at or before the resume position are skipped.
#[test]
fn resume_after_skips_bars_already_processed() {
    let runtime = tokio::runtime::Runtime::new().unwrap();
    let (addr, _) = kline_server(
        &runtime,
        vec![Script {
            messages: (0..5).map(|i| kline(i, true)).collect(),
            hang_up: false,
        }],
    );
    let mut feed = WebsocketFeed::open(
        &spec(format!("ws://{addr}/ws")),
        &instruments(),
        &allowing(addr),
    )
    .unwrap();
    feed.resume_after(FeedPosition {
        last_bar_ts: Some(UnixNanos((T0 + 2 * MINUTE) * 1_000_000)),
        last_scan_seq: None,
    });
    let seen = collect(&mut feed, |s| s.bars.len() >= 2);
    assert_eq!(minutes(&seen.bars), [3, 4]);
    assert_eq!(feed.duplicates_skipped(), 3);
}

/// Nobody listens: each failed attempt is a status, and the delay doubles up to the maximum.
#[test]
fn connection_failures_back_off_exponentially_up_to_the_maximum() {
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let addr: std::net::SocketAddr = format!("127.0.0.1:{port}").parse().unwrap();
    let mut feed = WebsocketFeed::open(
        &spec(format!("ws://{addr}/ws")),
        &instruments(),
        &allowing(addr),
    )
    .unwrap();
    let seen = collect(&mut feed, |s| s.statuses.len() >= 4);
    let delays: Vec<&str> = seen
        .statuses
        .iter()
        .map(|(connected, d)| {
            assert!(!connected);
            assert!(
                d.starts_with(&format!("cannot connect to ws://{addr}: ")),
                "{d}"
            );
            d.rsplit("reconnecting in ").next().unwrap()
        })
        .collect();
    assert_eq!(delays, ["20 ms", "40 ms", "50 ms", "50 ms"]);
}

/// The guard: a loopback server is refused unless allowed, with the field and a hint; the
/// URL's path and query are not echoed. Bad settings name their field.
#[test]
fn the_address_is_refused_when_the_guard_does_not_allow_it() {
    let runtime = tokio::runtime::Runtime::new().unwrap();
    let (addr, received) = kline_server(
        &runtime,
        vec![Script {
            messages: vec![kline(0, true)],
            hang_up: false,
        }],
    );
    let url = format!("ws://{addr}/ws/SECRET-LISTEN-KEY");
    let e = WebsocketFeed::open(&spec(url.clone()), &instruments(), &SsrfPolicy::default())
        .unwrap_err();
    assert_eq!(e.field, "feed.url");
    assert!(
        e.message.starts_with(&format!(
            "feed.url: ws://{addr}: address 127.0.0.1 is blocked (loopback"
        )),
        "{e}"
    );
    assert!(e.message.contains("--http-allow"), "{e}");
    assert!(!e.message.contains("SECRET"), "{e}");
    // Another port of the same host is not enough.
    let other = SsrfPolicy {
        allow_hosts: vec!["127.0.0.1:1".into()],
        ..SsrfPolicy::default()
    };
    assert!(WebsocketFeed::open(&spec(url.clone()), &instruments(), &other).is_err());
    // A deny path is refused even on an allowed host.
    let e = WebsocketFeed::open(
        &spec(format!("ws://{addr}/latest/meta-data")),
        &instruments(),
        &allowing(addr),
    )
    .unwrap_err();
    assert!(
        e.message.contains("is blocked (under `/latest/meta-data`)"),
        "{e}"
    );
    let e = WebsocketFeed::open(
        &spec(format!("http://{addr}/")),
        &instruments(),
        &allowing(addr),
    )
    .unwrap_err();
    assert!(e.message.contains("only ws and wss"), "{e}");
    assert!(received.lock().unwrap().is_empty(), "nothing connected");

    let mut bad = spec(format!("ws://{addr}/"));
    bad.max_backoff_ms = Some(10);
    let e = WebsocketFeed::open(&bad, &instruments(), &allowing(addr)).unwrap_err();
    assert_eq!(
        e.to_string(),
        "feed.max_backoff_ms: 10 is below backoff_ms 20"
    );
    bad.backoff_ms = Some(0);
    let e = WebsocketFeed::open(&bad, &instruments(), &allowing(addr)).unwrap_err();
    assert_eq!(e.field, "feed.backoff_ms");
    let mut both = spec(format!("ws://{addr}/"));
    both.fields = Some(serde_json::from_str("{}").unwrap());
    let e = WebsocketFeed::open(&both, &instruments(), &allowing(addr)).unwrap_err();
    assert_eq!(e.field, "feed.fields");
}

/// A generic bar stream mapped with `fields:` (JSON pointers, RFC 3339 times, numbers).
#[test]
fn a_generic_json_bar_stream_through_field_mapping() {
    let runtime = tokio::runtime::Runtime::new().unwrap();
    let bar = |i: i64| {
        format!(
            r#"{{"type":"bar","bar":{{"sym":"BTCUSDT","at":"2026-01-01T00:0{i}:00Z","ohlc":[100, 101.5, 99, {}],"vol":"3"}}}}"#,
            100 + i
        )
    };
    let (addr, _) = kline_server(
        &runtime,
        vec![Script {
            messages: vec![bar(0), r#"{"type":"heartbeat"}"#.to_string(), bar(1)],
            hang_up: false,
        }],
    );
    let mut s = spec(format!("ws://{addr}/bars"));
    s.preset = None;
    s.fields = Some(
        serde_json::from_value(serde_json::json!({
            "symbol": "/bar/sym", "ts": "/bar/at", "open": "/bar/ohlc/0", "high": "/bar/ohlc/1",
            "low": "/bar/ohlc/2", "close": "/bar/ohlc/3", "volume": "/bar/vol"
        }))
        .unwrap(),
    );
    let mut feed = WebsocketFeed::open(&s, &instruments(), &allowing(addr)).unwrap();
    let seen = collect(&mut feed, |s| s.bars.len() >= 2);
    assert_eq!(minutes(&seen.bars), [0, 1]);
    assert_eq!(seen.bars[1].close.to_string(), "101.00");
    // The subscription answer and the heartbeat are not bars: both malformed, by field.
    assert_eq!(
        seen.malformed,
        ["field `/bar/sym` is missing", "field `/bar/sym` is missing"]
    );
}
