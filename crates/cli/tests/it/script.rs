//! Script strategies (`strategy: {script: …}`) through the real binary: the same orders and
//! fills as the built-in Rust strategy, batched or not, and a failing script failing its run.

use std::path::{Path, PathBuf};
use std::process::Command;

use crate::{repo, run_json, stderr, stdout, tradeloom, write_spec};

/// The built-in `sma_cross` rule in Python, exactly (the example the docs and the bench use).
fn sma_cross_py() -> String {
    std::fs::read_to_string(repo().join("examples/strategies/sma_cross.py")).unwrap()
}

/// A project folder with `strategies/<name>` holding `body`.
fn project(name: &str, body: &str) -> tempfile::TempDir {
    let dir = tempfile::tempdir().unwrap();
    std::fs::create_dir_all(dir.path().join("strategies")).unwrap();
    std::fs::write(dir.path().join("strategies").join(name), body).unwrap();
    dir
}

fn goog() -> PathBuf {
    repo()
        .join("examples/data/goog_1d.csv")
        .canonicalize()
        .unwrap()
}

fn spec(strategy: &str, fill_model: &str, risk: &str) -> String {
    format!(
        "name: t\nmode: backtest\ninstruments: [{{symbol: GOOG, price_precision: 2, size_precision: 0}}]\n\
         data: [{{symbol: GOOG, path: {}}}]\n\
         strategy: {strategy}\n\
         execution: {{fill_model: {fill_model}}}\naccount: {{initial_cash: 100000, currency: USD}}\n{risk}",
        goog().display()
    )
}

fn read(dir: &Path, name: &str) -> String {
    std::fs::read_to_string(dir.join(name)).unwrap()
}

/// The journal without its `run_started` line (which names the strategy).
fn journal_events(dir: &Path) -> Vec<String> {
    read(dir, "journal.jsonl")
        .lines()
        .filter(|l| !l.contains("\"run_started\""))
        .map(str::to_string)
        .collect()
}

#[test]
fn a_python_sma_cross_trades_exactly_like_the_built_in() {
    let project = project("sma.py", &sma_cross_py());
    let data = tempfile::tempdir().unwrap();
    for fill_model in ["next_open", "bar_close"] {
        let builtin = write_spec(
            project.path(),
            "builtin.yaml",
            &spec(
                "{name: sma_cross, params: {fast: 10, slow: 20, quantity: 10}}",
                fill_model,
                "",
            ),
        );
        let script = write_spec(
            project.path(),
            "script.yaml",
            &spec(
                "{script: strategies/sma.py, class: SmaCross, params: {fast: 10, slow: 20, quantity: 10}}",
                fill_model,
                "",
            ),
        );
        let unbatched = write_spec(
            project.path(),
            "unbatched.yaml",
            &spec(
                "{script: strategies/sma.py, class: SmaCross, params: {fast: 10, slow: 20, quantity: 10}, batch: 1}",
                fill_model,
                "",
            ),
        );
        let (b, b_dir) = run_json(data.path(), &builtin);
        let (s, s_dir) = run_json(data.path(), &script);
        let (u, u_dir) = run_json(data.path(), &unbatched);
        assert_eq!(s["status"], "completed", "{s}");
        let trades = b["metrics"]["trades"].as_u64().unwrap();
        assert!(trades > 20, "the data makes many trades ({trades})");
        for name in ["orders.csv", "fills.csv", "trades.csv"] {
            assert_eq!(
                read(&b_dir, name),
                read(&s_dir, name),
                "{fill_model}: {name}"
            );
        }
        assert_eq!(
            journal_events(&b_dir),
            journal_events(&s_dir),
            "{fill_model}"
        );
        assert_eq!(b["metrics"], s["metrics"]);
        // Batched and one bar per round trip: byte-identical journals.
        assert_eq!(read(&s_dir, "journal.jsonl"), read(&u_dir, "journal.jsonl"));
        assert_eq!(s["metrics"], u["metrics"]);
        let started = read(&s_dir, "journal.jsonl");
        assert!(
            started.contains("script:strategies/sma.py:SmaCross"),
            "the run names the script"
        );
    }
}

/// A strategy whose decisions depend on its fills, in a run where the kill switch liquidates
/// the position on a drawdown: the engine's own fill lands inside a batch the script ran ahead,
/// so the script is rewound; the journal must still equal the unbatched one.
const FILL_AWARE_PY: &str = r#"from tradeloom.sandbox import Strategy


class Flipper(Strategy):
    def __init__(self, every):
        self.every = every
        self.n = 0
        self.fills = 0
        self.engine_fills = 0

    def on_bar(self, ctx, bar):
        self.n += 1
        if self.n % self.every == 0:
            if ctx.position_raw <= 0:
                ctx.buy(10 + self.fills + self.engine_fills)
            else:
                ctx.sell(ctx.position_raw // 1_000_000_000 + 5)

    def on_fill(self, ctx, fill):
        if fill.order is None:
            self.engine_fills += 1
        else:
            self.fills += 1
"#;

#[test]
fn an_engine_fill_inside_a_batch_rewinds_the_script_to_the_same_journal() {
    let project = project("flip.py", FILL_AWARE_PY);
    let data = tempfile::tempdir().unwrap();
    let risk = "risk: {max_drawdown_pct: 3, kill_switch: {flatten: true}}\n";
    let batched = write_spec(
        project.path(),
        "batched.yaml",
        &spec(
            "{script: strategies/flip.py, class: Flipper, params: {every: 40}}",
            "next_open",
            risk,
        ),
    );
    let single = write_spec(
        project.path(),
        "single.yaml",
        &spec(
            "{script: strategies/flip.py, class: Flipper, params: {every: 40}, batch: 1}",
            "next_open",
            risk,
        ),
    );
    let (_, b_dir) = run_json(data.path(), &batched);
    let (_, s_dir) = run_json(data.path(), &single);
    let journal = read(&b_dir, "journal.jsonl");
    assert!(
        journal.contains("kill_switch_liquidation"),
        "the drawdown limit liquidates (the case under test)"
    );
    assert_eq!(journal, read(&s_dir, "journal.jsonl"));

    // A strategy without `on_fill` gets no fill messages: the liquidation is seen as a changed
    // position at the next bar of the batch, and the child is rewound there.
    std::fs::write(project.path().join("strategies/sma.py"), sma_cross_py()).unwrap();
    let params = "params: {fast: 10, slow: 20, quantity: 200}";
    let batched = write_spec(
        project.path(),
        "sma_batched.yaml",
        &spec(
            &format!("{{script: strategies/sma.py, class: SmaCross, {params}}}"),
            "next_open",
            risk,
        ),
    );
    let single = write_spec(
        project.path(),
        "sma_single.yaml",
        &spec(
            &format!("{{script: strategies/sma.py, class: SmaCross, {params}, batch: 1}}"),
            "next_open",
            risk,
        ),
    );
    let builtin = write_spec(
        project.path(),
        "sma_builtin.yaml",
        &spec(&format!("{{name: sma_cross, {params}}}"), "next_open", risk),
    );
    let (_, b_dir) = run_json(data.path(), &batched);
    let (_, s_dir) = run_json(data.path(), &single);
    let (_, r_dir) = run_json(data.path(), &builtin);
    let journal = read(&b_dir, "journal.jsonl");
    assert!(journal.contains("kill_switch_liquidation"), "liquidated");
    assert_eq!(journal, read(&s_dir, "journal.jsonl"));
    assert_eq!(journal_events(&b_dir), journal_events(&r_dir));
}

#[test]
fn an_exception_fails_the_run_with_the_traceback() {
    let project = project(
        "boom.py",
        "from tradeloom import Strategy\n\nclass Boom(Strategy):\n    def on_bar(self, ctx, bar):\n        if bar.close > 200:\n            raise ValueError('close above 200: %s' % bar.close)\n",
    );
    let data = tempfile::tempdir().unwrap();
    let path = write_spec(
        project.path(),
        "boom.yaml",
        &spec("{script: strategies/boom.py, class: Boom}", "next_open", ""),
    );
    let out = tradeloom(data.path(), &["run", path.to_str().unwrap()]);
    assert!(!out.status.success());
    let err = stderr(&out);
    assert!(err.contains("ValueError: close above 200"), "{err}");
    assert!(
        err.contains("strategies/boom.py\", line 6, in on_bar"),
        "{err}"
    );
    let runs: Vec<_> = std::fs::read_dir(data.path().join("runs"))
        .unwrap()
        .map(|e| e.unwrap().path())
        .collect();
    assert_eq!(runs.len(), 1);
    let meta: serde_json::Value = serde_json::from_str(&read(&runs[0], "metadata.json")).unwrap();
    assert_eq!(meta["status"], "failed");
    assert!(
        meta["error"].as_str().unwrap().contains("ValueError"),
        "{meta}"
    );
    let journal = read(&runs[0], "journal.jsonl");
    let last = journal.lines().last().unwrap();
    assert!(
        last.contains("\"run_failed\"") && last.contains("Traceback"),
        "{last}"
    );
}

#[test]
fn an_infinite_loop_fails_the_run_on_the_call_budget() {
    let project = project(
        "spin.py",
        "from tradeloom import Strategy\n\nclass Spin(Strategy):\n    def on_bar(self, ctx, bar):\n        while bar.close > 300:\n            pass\n",
    );
    let data = tempfile::tempdir().unwrap();
    let path = write_spec(
        project.path(),
        "spin.yaml",
        &spec(
            "{script: strategies/spin.py, class: Spin, limits: {call_timeout_ms: 500}}",
            "next_open",
            "",
        ),
    );
    let out = tradeloom(data.path(), &["run", path.to_str().unwrap()]);
    assert!(!out.status.success(), "{}", stdout(&out));
    let err = stderr(&out);
    assert!(err.contains("limits.call_timeout_ms"), "{err}");
    // A second, healthy run in the same data dir is unaffected.
    let ok = write_spec(
        project.path(),
        "ok.yaml",
        &spec(
            "{name: sma_cross, params: {fast: 10, slow: 20, quantity: 10}}",
            "next_open",
            "",
        ),
    );
    let (v, _) = run_json(data.path(), &ok);
    assert_eq!(v["status"], "completed");
}

#[test]
fn a_missing_interpreter_is_a_clear_error() {
    let project = project("sma.py", &sma_cross_py());
    let data = tempfile::tempdir().unwrap();
    let path = write_spec(
        project.path(),
        "s.yaml",
        &spec(
            "{script: strategies/sma.py, class: SmaCross, params: {fast: 10, slow: 20, quantity: 10}}",
            "next_open",
            "",
        ),
    );
    let out = Command::new(env!("CARGO_BIN_EXE_tradeloom"))
        .args(["run", path.to_str().unwrap(), "--data-dir"])
        .arg(data.path())
        .env("TRADELOOM_PYTHON", "/nonexistent/python3")
        .output()
        .unwrap();
    assert!(!out.status.success());
    let err = stderr(&out);
    assert!(
        err.contains("the interpreter `/nonexistent/python3` was not found"),
        "{err}"
    );
    assert!(err.contains("TRADELOOM_PYTHON"), "{err}");
}

#[test]
fn script_fields_are_checked_with_their_line() {
    let project = project("sma.py", &sma_cross_py());
    let data = tempfile::tempdir().unwrap();
    for (strategy, expected) in [
        (
            "{script: strategies/nope.py, class: SmaCross}",
            "strategy.script: `strategies/nope.py` does not exist",
        ),
        (
            "{script: strategies/sma.py, class: 'Sma Cross'}",
            "strategy.class: `Sma Cross` is not a Python class name",
        ),
        (
            "{script: strategies/sma.py, class: SmaCross, limits: {memory_mb: 1}}",
            "strategy.limits.memory_mb: 1 is outside 64–16384",
        ),
        (
            "{script: strategies/sma.py, class: SmaCross, limit: {}}",
            "unknown field `limit`",
        ),
        (
            "{script: strategies/sma.py, class: Missing}",
            "the script defines no class Missing (strategy classes found: SmaCross)",
        ),
    ] {
        let path = write_spec(project.path(), "bad.yaml", &spec(strategy, "next_open", ""));
        let out = tradeloom(data.path(), &["run", path.to_str().unwrap()]);
        assert!(!out.status.success());
        let err = stderr(&out);
        assert!(err.contains(expected), "{strategy}: {err}");
        assert!(
            err.contains("bad.yaml:5"),
            "{strategy}: names the line: {err}"
        );
    }
}

#[test]
fn flow_validate_checks_the_skills_of_script_nodes_in_the_config_folder() {
    let config = tempfile::tempdir().unwrap();
    std::fs::create_dir_all(config.path().join("skills")).unwrap();
    std::fs::write(
        config.path().join("skills/momentum.py"),
        std::fs::read_to_string(repo().join("examples/skills/momentum.py")).unwrap(),
    )
    .unwrap();
    let wf = write_spec(
        config.path(),
        "wf.yaml",
        "name: skills\nnodes:\n  - {id: a, type: script, config: {script: skills/momentum.py, input: {closes: [1, 2]}}}\n  \
         - {id: b, type: script, config: {script: skills/missing.py}}\n",
    );
    let data = tempfile::tempdir().unwrap();
    let dir = config.path().to_str().unwrap();
    let out = tradeloom(
        data.path(),
        &[
            "flow",
            "validate",
            wf.to_str().unwrap(),
            "--config-dir",
            dir,
        ],
    );
    assert_eq!(out.status.code(), Some(2), "{}", stdout(&out));
    let err = stderr(&out);
    assert!(
        err.contains(
            "nodes[1].config.script: `skills/missing.py` does not exist in the config folder"
        ),
        "{err}"
    );
    assert!(!err.contains("nodes[0]"), "{err}");
    // Without the config folder only the text is checked (the server checks the files).
    let out = tradeloom(data.path(), &["flow", "validate", wf.to_str().unwrap()]);
    assert!(out.status.success(), "{}", stderr(&out));
}
