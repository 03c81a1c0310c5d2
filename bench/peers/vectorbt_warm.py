"""vectorbt's compute in a warm process: what a notebook user compares with the engine.

Our own harness for `tradeloom bench engine` (not vectorbt code). Usage:

    python vectorbt_warm.py BARS.csv [BARS.csv ...] --repeat N

For each CSV of bars (`timestamp,open,high,low,close[,volume]`, written by the bench from the
same synthetic bars the engine replays): loads it (not timed), computes the sma 20/50 cross
signals and runs `vbt.Portfolio.from_signals` once to compile numba (not timed), then times N
warm calls and prints one JSON line per file with the median wall and CPU milliseconds of:

- `from_signals_ms`: `Portfolio.from_signals` alone (signals ready), the figure the issue names;
- `signals_and_portfolio_ms`: the moving averages, the cross signals and `from_signals` together.

The trading mirrors the engine's `sma_cross` (fast 20, slow 50, one unit, long and short):
a cross up enters long (reversing a short), a cross down enters short (reversing a long); the
signal of one bar's close fills at the next bar's open, without fees.
"""

import argparse
import json
import statistics
import sys
import time

import numpy as np
import pandas as pd
import vectorbt as vbt

FAST, SLOW = 20, 50


def load(path):
    bars = pd.read_csv(path)
    bars.columns = [c.strip().lower() for c in bars.columns]
    return (
        bars["open"].to_numpy(dtype=np.float64),
        pd.Series(bars["close"].to_numpy(dtype=np.float64)),
    )


def signals(close):
    fast = close.rolling(FAST).mean()
    slow = close.rolling(SLOW).mean()
    above = (fast > slow) & slow.notna()
    below = (fast < slow) & slow.notna()
    up = above & ~above.shift(1, fill_value=False)
    down = below & ~below.shift(1, fill_value=False)
    # Decided on a bar's close, filled at the next bar's open.
    return (
        up.shift(1, fill_value=False).to_numpy(),
        down.shift(1, fill_value=False).to_numpy(),
    )


def portfolio(open_, close, up, down):
    # Plain numpy arrays: vectorbt's fastest input (a Series on a DatetimeIndex took ~20x
    # longer per call here), so the peer is timed at its best.
    return vbt.Portfolio.from_signals(
        close.to_numpy() if isinstance(close, pd.Series) else close,
        entries=up,
        short_entries=down,
        price=open_,
        size=1.0,
        init_cash=1_000_000.0,
        fees=0.0,
    )


def timed(call, repeat):
    walls, cpus, result = [], [], None
    for _ in range(repeat):
        wall, cpu = time.perf_counter(), time.process_time()
        result = call()
        cpus.append((time.process_time() - cpu) * 1e3)
        walls.append((time.perf_counter() - wall) * 1e3)
    return statistics.median(walls), statistics.median(cpus), result


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("files", nargs="+")
    parser.add_argument("--repeat", type=int, default=5)
    args = parser.parse_args()
    for path in args.files:
        open_, close = load(path)
        up, down = signals(close)
        started = time.perf_counter()
        warm = portfolio(open_, close, up, down)  # numba compiles here (first file only)
        first_ms = (time.perf_counter() - started) * 1e3
        pf_ms, pf_cpu_ms, pf = timed(lambda: portfolio(open_, close, up, down), args.repeat)
        both_ms, both_cpu_ms, _ = timed(
            lambda: portfolio(open_, close, *signals(close)), args.repeat
        )
        print(
            json.dumps(
                {
                    "bars": len(close),
                    "repeat": args.repeat,
                    "first_call_ms": first_ms,
                    "from_signals_ms": pf_ms,
                    "from_signals_cpu_ms": pf_cpu_ms,
                    "signals_and_portfolio_ms": both_ms,
                    "signals_and_portfolio_cpu_ms": both_cpu_ms,
                    "orders": int(pf.orders.count()),
                    "final_value": float(pf.final_value()),
                    "warm_orders": int(warm.orders.count()),
                    "vectorbt": vbt.__version__,
                }
            ),
            flush=True,
        )


if __name__ == "__main__":
    sys.exit(main())
