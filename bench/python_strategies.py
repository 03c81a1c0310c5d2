"""Issue 18's figures: the same SMA cross (20/50, one unit, long and short, next-open fills, no
fees) on the same synthetic 1-minute bars, written as

- the built-in Rust strategy, through `tradeloom.backtest(spec)` in this (warm) process, from
  the CSV file and from the same bars already in memory (`data=` a pyarrow Table);
- a Python strategy in process, `tradeloom.backtest(spec, strategy=SmaCross(...))`
  (examples/python/sma_cross.py);
- the sandboxed script (examples/strategies/sma_cross.py) through `tradeloom run`;
- backtesting.py 0.6.6 running the same logic, its `Backtest.run()` timed in a warm process;
- vectorbt's `Portfolio.from_signals`, warm (bench/peers/vectorbt_warm.py), beside the
  built-in through `tradeloom.backtest`.

Each tradeloom figure is a whole backtest: reading the bars, the engine, and writing and hashing
the run folder (journal, fills, equity, report). Prints bars/s and CPU time per bar (the
machine is shared: CPU time is the figure to compare) and the ratios.

Usage (the package installed in this interpreter, the peers in $TRADELOOM_BENCH_VENV or
~/.cache/tradeloom-bench-venv from bench/peers/setup):

    TRADELOOM_BIN=target/release/tradeloom python bench/python_strategies.py --bars 1000000
"""

import argparse
import json
import os
import resource
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import tradeloom

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / "examples" / "python"))
from sma_cross import SmaCross  # noqa: E402

FAST, SLOW, CASH = 20, 50, 1_000_000


def spec(bars: Path, strategy) -> dict:
    return {
        "name": "bench-python-strategies",
        "mode": "backtest",
        "venue": "sim",
        "instruments": [{"symbol": "SYN", "price_precision": 2, "size_precision": 0}],
        "data": [{"symbol": "SYN", "path": str(bars)}],
        "strategy": strategy,
        "execution": {"fill_model": "next_open", "fee_bps": 0, "slippage_bps": 0},
        "account": {"initial_cash": CASH, "currency": "USD"},
    }


def children_cpu() -> float:
    usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    return usage.ru_utime + usage.ru_stime


def timed(call, repeat):
    walls, cpus, result = [], [], None
    for _ in range(repeat):
        wall, cpu = time.perf_counter(), time.process_time()
        result = call()
        cpus.append(time.process_time() - cpu)
        walls.append(time.perf_counter() - wall)
    return statistics.median(walls), statistics.median(cpus), result


def peers_python() -> Path:
    venv = Path(os.environ.get("TRADELOOM_BENCH_VENV", Path.home() / ".cache/tradeloom-bench-venv"))
    return venv / "bin" / "python"


def row(label, bars, wall, cpu, note=""):
    print(
        f"{label:<44} {bars / wall:>14,.0f} bars/s {wall * 1e3:>10.1f} ms "
        f"{cpu / bars * 1e9:>9.1f} CPU-ns/bar  {note}",
        flush=True,
    )


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--bars", type=int, default=1_000_000)
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--no-peers", action="store_true")
    args = parser.parse_args()
    binary = os.environ.get("TRADELOOM_BIN", "")
    if not Path(binary).is_file():
        sys.exit("TRADELOOM_BIN must name a built tradeloom binary")
    work = Path(tempfile.mkdtemp(prefix="tradeloom-bench-py-"))
    bars = work / "bars.csv"
    subprocess.run(
        [binary, "data", "synth", "--symbol", "SYN", "--bars", str(args.bars), "--out", str(bars)],
        check=True, capture_output=True,
    )
    data_dir = work / "data"
    n = args.bars
    print(f"{n:,} one-minute bars, sma cross {FAST}/{SLOW}, median of {args.repeat}; "
          f"load {os.getloadavg()[0]:.1f}", flush=True)

    builtin = {"name": "sma_cross", "params": {"fast": FAST, "slow": SLOW, "quantity": 1}}
    wall_b, cpu_b, res_b = timed(
        lambda: tradeloom.backtest(spec(bars, builtin), data_dir=data_dir), args.repeat
    )
    row("built-in (Rust), tradeloom.backtest", n, wall_b, cpu_b)
    # The same bars already in memory, as vectorbt's arrays are: a pyarrow Table as `data=`
    # (kept under frames/ as Arrow IPC and read back without decoding).
    import pyarrow.csv as pacsv

    table = pacsv.read_csv(bars)
    wall_m, cpu_m, res_m = timed(
        lambda: tradeloom.backtest(spec(bars, builtin), data=table, data_dir=data_dir),
        args.repeat,
    )
    same = (res_m.run_dir / "fills.csv").read_bytes() == (res_b.run_dir / "fills.csv").read_bytes()
    row("built-in, data= a pyarrow Table in memory", n, wall_m, cpu_m,
        f"fills equal the file run's: {same}")
    wall_p, cpu_p, res_p = timed(
        lambda: tradeloom.backtest(
            spec(bars, builtin), strategy=SmaCross(FAST, SLOW, 1), data_dir=data_dir
        ),
        args.repeat,
    )
    same = (res_p.run_dir / "fills.csv").read_bytes() == (res_b.run_dir / "fills.csv").read_bytes()
    row("Python strategy in process", n, wall_p, cpu_p, f"fills equal the built-in's: {same}")

    script_spec = spec(bars, {
        "script": str(REPO / "examples" / "strategies" / "sma_cross.py"),
        "class": "SmaCross",
        "params": {"fast": FAST, "slow": SLOW, "quantity": 1},
    })
    spec_file = work / "script.json"
    spec_file.write_text(json.dumps(script_spec))
    walls, cpus = [], []
    for _ in range(args.repeat):
        wall, cpu = time.perf_counter(), children_cpu()
        out = subprocess.run(
            [binary, "run", str(spec_file), "--data-dir", str(data_dir), "--json"],
            capture_output=True, text=True,
        )
        cpus.append(children_cpu() - cpu)
        walls.append(time.perf_counter() - wall)
        if out.returncode != 0:
            print(f"sandboxed script: failed: {out.stderr.strip()[-400:]}")
            break
    else:
        run = json.loads(out.stdout.strip().splitlines()[-1])
        same = (Path(run["run_dir"]) / "fills.csv").read_bytes() == (
            res_b.run_dir / "fills.csv").read_bytes()
        row("sandboxed script, tradeloom run (process)", n, statistics.median(walls),
            statistics.median(cpus), f"fills equal the built-in's: {same}")

    if args.no_peers:
        return
    python = peers_python()
    if not python.is_file():
        print(f"peers: not installed ({python}; run bench/peers/setup)")
        return
    out = subprocess.run(
        [str(python), str(REPO / "bench/peers/backtesting_run.py"), str(bars), str(FAST),
         str(SLOW), str(CASH)],
        capture_output=True, text=True,
    )
    if out.returncode == 0:
        bt = json.loads(out.stdout.strip().splitlines()[-1])
        wall, cpu = bt["run_wall_ms"] / 1e3, bt["run_cpu_ms"] / 1e3
        row(f"backtesting.py {bt['version']} Backtest.run()", n, wall, cpu,
            f"trades {bt['trades']} (tradeloom {res_p.metrics['trades']})")
        print(f"  Python strategy vs backtesting.py: {wall / wall_p:.1f}x wall, "
              f"{cpu / cpu_p:.1f}x CPU (aim >= 10x)")
    else:
        print(f"backtesting.py: failed: {out.stderr.strip()[-400:]}")
    out = subprocess.run(
        [str(python), str(REPO / "bench/peers/vectorbt_warm.py"), str(bars), "--repeat",
         str(max(args.repeat, 3))],
        capture_output=True, text=True,
    )
    if out.returncode == 0:
        vb = json.loads(out.stdout.strip().splitlines()[-1])
        wall, cpu = vb["from_signals_ms"] / 1e3, vb["from_signals_cpu_ms"] / 1e3
        row(f"vectorbt {vb['vectorbt']} from_signals (warm)", n, wall, cpu)
        print(f"  tradeloom.backtest (built-in, whole run) vs vectorbt from_signals: "
              f"{wall / wall_b:.2f}x wall, {cpu / cpu_b:.2f}x CPU (bars from the CSV file); "
              f"{wall / wall_m:.2f}x wall, {cpu / cpu_m:.2f}x CPU (bars in memory)")
    else:
        print(f"vectorbt: failed: {out.stderr.strip()[-400:]}")


if __name__ == "__main__":
    main()
