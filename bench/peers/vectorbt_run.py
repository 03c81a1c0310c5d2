"""tradeloom bench run: vectorbt on the bench's bar file, as a whole process.

Usage: python vectorbt_run.py BARS.csv FAST SLOW CASH

The work of `tradeloom run` on the bench spec: SMA(FAST) and SMA(SLOW) of closes; a cross up
goes long 1 (closing any short), a cross down goes short 1 (closing any long); filled at the next
bar's open (the signals shifted one bar, `price=open`), no fees. Whole process, as a user runs a
script: import (numba compiles vectorbt's kernels on every start unless cached), load the CSV,
compute. Prints one JSON line: closed round trips and final equity.
"""

import importlib.metadata
import json
import sys

import pandas as pd
import vectorbt as vbt

path, fast, slow, cash = sys.argv[1], int(sys.argv[2]), int(sys.argv[3]), float(sys.argv[4])

frame = pd.read_csv(path, index_col="timestamp", parse_dates=["timestamp"])
close = frame["close"]
fast_ma = vbt.MA.run(close, fast).ma
slow_ma = vbt.MA.run(close, slow).ma
# Crossed on this bar: fast above slow now, below before (as backtesting.py's `crossover`).
up = (fast_ma > slow_ma) & (fast_ma.shift(1) < slow_ma.shift(1))
down = (fast_ma < slow_ma) & (fast_ma.shift(1) > slow_ma.shift(1))
# Decided at this bar's close, filled at the next bar's open.
entries = up.shift(1, fill_value=False)
short_entries = down.shift(1, fill_value=False)
portfolio = vbt.Portfolio.from_signals(
    close,
    entries=entries,
    short_entries=short_entries,
    price=frame["open"],
    size=1.0,
    init_cash=cash,
    fees=0.0,
    freq="1min",
)
trades = portfolio.trades
print(
    json.dumps(
        {
            "engine": "vectorbt",
            "version": importlib.metadata.version("vectorbt"),
            "bars": len(frame),
            "trades": int((trades.status.values == 1).sum()),
            "final_equity": float(portfolio.final_value()),
        }
    )
)
