//! `data universe`: the files it writes, determinism, the shipped example, bad arguments.

use std::path::{Path, PathBuf};

use crate::{repo, stderr, stdout, tradeloom};

/// File names and bytes of a folder, sorted by name.
fn files(dir: &Path) -> Vec<(String, Vec<u8>)> {
    let mut out: Vec<(String, Vec<u8>)> = std::fs::read_dir(dir)
        .unwrap()
        .map(|e| {
            let p = e.unwrap().path();
            (
                p.file_name().unwrap().to_string_lossy().into_owned(),
                std::fs::read(&p).unwrap(),
            )
        })
        .collect();
    out.sort();
    out
}

fn universe(data_dir: &Path, out: &Path, extra: &[&str]) -> std::process::Output {
    let mut args = vec!["data", "universe", "--out", out.to_str().unwrap()];
    args.extend_from_slice(extra);
    tradeloom(data_dir, &args)
}

#[test]
fn writes_bar_files_and_news_deterministically() {
    let dir = tempfile::tempdir().unwrap();
    let a = dir.path().join("a");
    let args = [
        "--symbols",
        "3",
        "--days",
        "25",
        "--seed",
        "7",
        "--start",
        "2025-03-01",
    ];
    let out = universe(dir.path(), &a, &args);
    assert!(out.status.success(), "{}", stderr(&out));
    let text = stdout(&out);
    assert!(text.contains("3 (AAA, BBB, CCC)"), "{text}");
    // 2025-03-01 is a Saturday: the first trading day is Monday the 3rd; 25 weekdays end on
    // Friday 2025-04-04.
    assert!(text.contains("25 (2025-03-03 → 2025-04-04)"), "{text}");
    let written = files(&a);
    let names: Vec<&str> = written.iter().map(|(n, _)| n.as_str()).collect();
    assert_eq!(names, ["AAA.csv", "BBB.csv", "CCC.csv", "news.jsonl"]);
    let aaa = String::from_utf8(written[0].1.clone()).unwrap();
    assert_eq!(aaa.lines().count(), 26, "header and 25 bars");
    assert!(
        aaa.lines().nth(1).unwrap().starts_with("2025-03-03,"),
        "{aaa}"
    );
    let news = String::from_utf8(written[3].1.clone()).unwrap();
    let items = news.lines().count();
    assert!(text.contains(&format!("{items} items")), "{text}");
    for line in news.lines() {
        let item: serde_json::Value = serde_json::from_str(line).unwrap();
        let keys: Vec<&String> = item.as_object().unwrap().keys().collect();
        assert_eq!(keys.len(), 4, "{line}");
        assert!(line.starts_with(r#"{"timestamp":"2025-0"#), "{line}");
    }

    // Same arguments, another folder: the same bytes. Another seed: other prices.
    let b = dir.path().join("b");
    assert!(universe(dir.path(), &b, &args).status.success());
    assert_eq!(files(&b), written);
    let c = dir.path().join("c");
    let other_seed = [
        "--symbols",
        "3",
        "--days",
        "25",
        "--seed",
        "8",
        "--start",
        "2025-03-01",
    ];
    assert!(universe(dir.path(), &c, &other_seed).status.success());
    assert_ne!(files(&c)[0].1, written[0].1);

    // --no-news writes the bar files only.
    let d = dir.path().join("d");
    let out = universe(dir.path(), &d, &[&args[..], &["--no-news"]].concat());
    assert!(out.status.success(), "{}", stderr(&out));
    assert!(stdout(&out).contains("not written (--no-news)"));
    let bars_only: Vec<String> = files(&d).into_iter().map(|(n, _)| n).collect();
    assert_eq!(bars_only, ["AAA.csv", "BBB.csv", "CCC.csv"]);
}

/// The shipped example folder.
fn shipped() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../../examples/universe")
}

#[test]
fn the_shipped_universe_is_what_the_command_writes() {
    let dir = tempfile::tempdir().unwrap();
    let out_dir = dir.path().join("universe");
    let out = universe(
        dir.path(),
        &out_dir,
        &[
            "--symbols",
            "8",
            "--days",
            "60",
            "--seed",
            "42",
            "--start",
            "2025-01-02",
        ],
    );
    assert!(out.status.success(), "{}", stderr(&out));
    let expected = files(&shipped());
    assert_eq!(
        expected.len(),
        9,
        "8 bar files and news.jsonl in examples/universe"
    );
    let got = files(&out_dir);
    assert_eq!(
        got.iter().map(|(n, _)| n).collect::<Vec<_>>(),
        expected.iter().map(|(n, _)| n).collect::<Vec<_>>()
    );
    for ((name, got), (_, want)) in got.iter().zip(&expected) {
        assert!(
            got == want,
            "{name} differs from examples/universe/{name}; regenerate with `tradeloom data universe --out examples/universe` if the generator changed on purpose"
        );
    }
    // The defaults are the shipped universe's arguments.
    let defaults = dir.path().join("defaults");
    assert!(universe(dir.path(), &defaults, &[]).status.success());
    assert_eq!(files(&defaults), expected);
    assert!(repo().join("examples/universe/AAA.csv").is_file());
}

#[test]
fn bad_arguments_exit_2_with_a_clear_message() {
    let dir = tempfile::tempdir().unwrap();
    let out_dir = dir.path().join("u");
    for (args, expected) in [
        (&["--symbols", "0"][..], "symbols is 0; expected 1 to 500"),
        (
            &["--symbols", "501"][..],
            "symbols is 501; expected 1 to 500",
        ),
        (&["--days", "0"][..], "days is 0; expected 1 to 20000"),
        (
            &["--start", "2025-02-30"][..],
            "--start: invalid date `2025-02-30`; expected YYYY-MM-DD",
        ),
        (
            &["--seed", "minus-one"][..],
            "invalid value 'minus-one' for '--seed <SEED>'",
        ),
        (&["--symbols", "-3"][..], "unexpected argument '-3'"),
    ] {
        let out = universe(dir.path(), &out_dir, args);
        assert_eq!(out.status.code(), Some(2), "{args:?}: {}", stderr(&out));
        let err = stderr(&out);
        assert!(
            err.contains(expected),
            "{args:?}: expected `{expected}` in {err}"
        );
    }
    assert!(!out_dir.exists(), "nothing is written for bad arguments");

    // A folder holding another universe's bar files is refused, not mixed into.
    std::fs::create_dir_all(&out_dir).unwrap();
    std::fs::write(out_dir.join("ZZZ.csv"), "timestamp,open,high,low,close\n").unwrap();
    let out = universe(dir.path(), &out_dir, &[]);
    assert_eq!(out.status.code(), Some(2));
    assert!(
        stderr(&out).contains("already holds other bar files (ZZZ.csv)"),
        "{}",
        stderr(&out)
    );
}
