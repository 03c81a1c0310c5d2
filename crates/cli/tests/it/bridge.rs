//! `tradeloom bridge` and `tradeloom map show` as processes: a producer writing a scan every
//! 50 ms for 60 s (restarting twice, leaving partial files, some files written in place), the
//! bridge killed -9 mid-way and restarted; and the clear errors of bad input.

use std::collections::BTreeMap;
use std::io::{BufRead, BufReader, Write};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use super::{stderr, stdout, tradeloom};

/// One line `tradeloom bridge --json` printed.
#[derive(Clone, Debug, PartialEq, Eq)]
struct Announced {
    seq: u64,
    file: String,
    rows: u64,
}

struct BridgeProcess {
    child: Child,
    reader: std::thread::JoinHandle<()>,
}

fn start_bridge(data_dir: &Path, watch: &Path, lines: Arc<Mutex<Vec<Announced>>>) -> BridgeProcess {
    let mut child = Command::new(env!("CARGO_BIN_EXE_tradeloom"))
        .args([
            "bridge",
            "--map",
            "scans",
            "--json",
            "--rescan-ms",
            "300",
            "--watch",
        ])
        .arg(watch)
        .arg("--data-dir")
        .arg(data_dir)
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .expect("tradeloom bridge starts");
    let out = child.stdout.take().unwrap();
    let reader = std::thread::spawn(move || {
        for line in BufReader::new(out).lines() {
            let Ok(line) = line else { break };
            let v: serde_json::Value = serde_json::from_str(&line)
                .unwrap_or_else(|e| panic!("bridge printed a line that is not JSON ({e}): {line}"));
            lines.lock().unwrap().push(Announced {
                seq: v["seq"].as_u64().unwrap(),
                file: v["file"].as_str().unwrap().to_string(),
                rows: v["rows"].as_u64().unwrap(),
            });
        }
    });
    BridgeProcess { child, reader }
}

fn scan_text(i: u64) -> String {
    let mut text = String::from("symbol,price,score,scan\n");
    for (k, symbol) in ["AAA", "BBB", "CCC"].iter().enumerate() {
        text.push_str(&format!(
            "{symbol},{}.{:02},0.{},{i}\n",
            100 + k as u64,
            i % 100,
            i % 10
        ));
    }
    text
}

/// Writes scan `i`: through a temporary file and a rename, or (every 7th) in place in two
/// halves split mid-line, with a pause between them.
fn write_scan(dir: &Path, i: u64) -> String {
    let name = format!("scan-{i:06}.csv");
    let text = scan_text(i);
    if i.is_multiple_of(7) {
        let mut f = std::fs::File::create(dir.join(&name)).unwrap();
        let (a, b) = text.split_at(text.len() / 2 + 3);
        f.write_all(a.as_bytes()).unwrap();
        f.flush().unwrap();
        std::thread::sleep(Duration::from_millis(5));
        f.write_all(b.as_bytes()).unwrap();
    } else {
        let tmp = dir.join(format!(".{name}.tmp"));
        std::fs::write(&tmp, text).unwrap();
        std::fs::rename(&tmp, dir.join(&name)).unwrap();
    }
    name
}

/// A producer that dies mid-write: half a scan in a temporary file, half in a `.partial`, never
/// renamed.
fn leave_partial_files(dir: &Path, i: u64) {
    let text = scan_text(i);
    let half = &text[..text.len() / 2];
    std::fs::write(dir.join(format!(".scan-{i:06}.csv.tmp")), half).unwrap();
    std::fs::write(dir.join(format!("scan-{i:06}.csv.partial")), half).unwrap();
}

fn signal(child: &Child, sig: i32) {
    let pid = child.id() as i32;
    // A test-only kill(2) of a child this test started.
    let status = Command::new("kill")
        .arg(format!("-{sig}"))
        .arg(pid.to_string())
        .status()
        .unwrap();
    assert!(status.success());
}

#[test]
fn bridge_survives_producer_restarts_partial_files_and_its_own_kill_9() {
    let data = tempfile::tempdir().unwrap();
    let watch = data.path().join("scans");
    std::fs::create_dir_all(&watch).unwrap();
    let lines = Arc::new(Mutex::new(Vec::new()));
    let mut bridge = start_bridge(data.path(), &watch, lines.clone());

    let written: Arc<Mutex<Vec<String>>> = Arc::new(Mutex::new(Vec::new()));
    let producer = {
        let watch = watch.clone();
        let written = written.clone();
        std::thread::spawn(move || {
            let start = Instant::now();
            let mut i = 0;
            let mut restarts = 0;
            while start.elapsed() < Duration::from_secs(60) {
                i += 1;
                let elapsed = start.elapsed();
                if (restarts == 0 && elapsed > Duration::from_secs(15))
                    || (restarts == 1 && elapsed > Duration::from_secs(40))
                {
                    // The producer "crashes" mid-write and comes back 400 ms later with the
                    // next number.
                    restarts += 1;
                    leave_partial_files(&watch, i);
                    std::thread::sleep(Duration::from_millis(400));
                    continue;
                }
                let name = write_scan(&watch, i);
                written.lock().unwrap().push(name);
                std::thread::sleep(Duration::from_millis(50));
            }
            restarts
        })
    };

    // Mid-way the bridge is killed -9 and started again 700 ms later.
    std::thread::sleep(Duration::from_secs(28));
    signal(&bridge.child, 9);
    bridge.child.wait().unwrap();
    bridge.reader.join().unwrap();
    let before_kill = lines.lock().unwrap().len();
    std::thread::sleep(Duration::from_millis(700));
    let mut bridge = start_bridge(data.path(), &watch, lines.clone());

    assert_eq!(producer.join().unwrap(), 2, "the producer restarted twice");
    let written = written.lock().unwrap().clone();
    let last = written.last().unwrap().clone();
    let deadline = Instant::now() + Duration::from_secs(60);
    while !lines.lock().unwrap().iter().any(|l| l.file == last) {
        assert!(
            Instant::now() < deadline,
            "the bridge never published the last file {last}"
        );
        std::thread::sleep(Duration::from_millis(50));
    }
    signal(&bridge.child, 15);
    let status = bridge.child.wait().unwrap();
    assert!(status.success(), "SIGTERM ends the bridge with 0: {status}");
    bridge.reader.join().unwrap();

    let lines = lines.lock().unwrap().clone();
    assert!(before_kill > 100, "{before_kill} scans before the kill");
    // A scan announced right before the kill and not yet published is announced again, the
    // same, after the restart: identical repeats are one scan.
    let mut published: Vec<Announced> = Vec::new();
    for line in lines {
        if published.last() != Some(&line) {
            published.push(line);
        }
    }
    let seqs: Vec<u64> = published.iter().map(|l| l.seq).collect();
    assert_eq!(
        seqs,
        (1..=published.len() as u64).collect::<Vec<_>>(),
        "sequences strictly increasing, without gaps"
    );
    let files: Vec<String> = published.iter().map(|l| l.file.clone()).collect();
    let missing: Vec<&String> = written.iter().filter(|w| !files.contains(w)).collect();
    let extra: Vec<&String> = files.iter().filter(|f| !written.contains(f)).collect();
    assert!(
        missing.is_empty() && extra.is_empty(),
        "lost scans: {missing:?}; scans never written: {extra:?}"
    );
    assert!(
        files == written,
        "every scan published once, in write order"
    );
    assert!(
        published.iter().all(|l| l.rows == 3),
        "a scan read half-written: {:?}",
        published.iter().find(|l| l.rows != 3)
    );
    assert!(written.len() > 900, "{} scans written", written.len());

    // The map as another process sees it: the last scan, whole.
    let out = tradeloom(data.path(), &["map", "show", "scans", "--json"]);
    assert!(out.status.success(), "{}", stderr(&out));
    let map: serde_json::Value = serde_json::from_str(stdout(&out).trim()).unwrap();
    assert_eq!(map["name"], "scans");
    assert_eq!(map["seq"], published.len() as u64);
    assert_eq!(map["source"], last.as_str());
    let n: u64 = last[5..11].parse().unwrap();
    let values = map["values"].as_object().unwrap();
    assert_eq!(values.len(), 3);
    assert_eq!(values["BBB"]["scan"], n);
    assert_eq!(values["BBB"]["symbol"], "BBB");
    assert!(map["updated_at"].as_str().unwrap().ends_with('Z'));
    // The cursor remembers the last file.
    let cursor: serde_json::Value =
        serde_json::from_slice(&std::fs::read(data.path().join("maps/scans.bridge.json")).unwrap())
            .unwrap();
    assert_eq!(cursor["last_file"], last.as_str());
    assert_eq!(cursor["last_seq"], published.len() as u64);
}

#[test]
fn a_malformed_file_is_skipped_and_the_bridge_goes_on() {
    let data = tempfile::tempdir().unwrap();
    let watch = data.path().join("in");
    std::fs::create_dir_all(&watch).unwrap();
    std::fs::write(watch.join("a-1.csv"), "symbol,price\nAAA,1\n").unwrap();
    std::fs::write(watch.join("a-2.jsonl"), "{\"symbol\": \"AAA\"\nnot json\n").unwrap();
    std::thread::sleep(Duration::from_millis(20));
    std::fs::write(
        watch.join("a-3.jsonl"),
        "{\"symbol\": \"AAA\", \"price\": 2}\n",
    )
    .unwrap();
    let lines = Arc::new(Mutex::new(Vec::new()));
    let mut bridge = start_bridge(data.path(), &watch, lines.clone());
    let deadline = Instant::now() + Duration::from_secs(30);
    while lines.lock().unwrap().len() < 2 {
        assert!(Instant::now() < deadline, "{:?}", lines.lock().unwrap());
        std::thread::sleep(Duration::from_millis(20));
    }
    signal(&bridge.child, 15);
    assert!(bridge.child.wait().unwrap().success());
    bridge.reader.join().unwrap();
    let files: BTreeMap<u64, String> = lines
        .lock()
        .unwrap()
        .iter()
        .map(|l| (l.seq, l.file.clone()))
        .collect();
    assert_eq!(
        files,
        BTreeMap::from([(1, "a-1.csv".to_string()), (2, "a-3.jsonl".to_string())])
    );
    let cursor: serde_json::Value =
        serde_json::from_slice(&std::fs::read(data.path().join("maps/scans.bridge.json")).unwrap())
            .unwrap();
    assert_eq!(cursor["malformed"], 1);
}

#[test]
fn bad_bridge_and_map_input_are_clear_errors() {
    let data = tempfile::tempdir().unwrap();
    let missing: PathBuf = data.path().join("nowhere");
    let out = tradeloom(
        data.path(),
        &[
            "bridge",
            "--watch",
            missing.to_str().unwrap(),
            "--map",
            "scans",
        ],
    );
    assert_eq!(out.status.code(), Some(2));
    assert!(
        stderr(&out).contains("--watch") && stderr(&out).contains("nowhere"),
        "{}",
        stderr(&out)
    );
    let out = tradeloom(
        data.path(),
        &[
            "bridge",
            "--watch",
            data.path().to_str().unwrap(),
            "--map",
            "a/b",
        ],
    );
    assert_eq!(out.status.code(), Some(2));
    assert!(
        stderr(&out).contains("invalid map name `a/b`"),
        "{}",
        stderr(&out)
    );
    let out = tradeloom(data.path(), &["map", "show", "absent", "--json"]);
    assert_eq!(out.status.code(), Some(2));
    assert!(
        stderr(&out).contains("no map `absent`") && stderr(&out).contains("tradeloom bridge"),
        "{}",
        stderr(&out)
    );
}
