"""tradeloom bench run: backtesting.py on the bench's bar file, as a whole process.

Usage: python backtesting_run.py BARS.csv FAST SLOW CASH

The work of `tradeloom run` on the bench spec: SMA(FAST) and SMA(SLOW) of closes; on a cross up
close any short and buy 1, on a cross down close any long and sell 1; market orders filled at the
next bar's open (backtesting.py's default, `trade_on_close=False`), no commission. Prints one JSON
line: closed round trips and final equity (cash + the open position at the last close), and the
wall and CPU milliseconds of `Backtest(...).run()` alone (`run_wall_ms`, `run_cpu_ms`: the
figure a warm process compares, bench/python_strategies.py).
"""

import importlib.metadata
import json
import sys
import time
import warnings

import pandas as pd
from backtesting import Backtest, Strategy
from backtesting.lib import crossover

path, fast, slow, cash = sys.argv[1], int(sys.argv[2]), int(sys.argv[3]), float(sys.argv[4])


def sma(values, n):
    return pd.Series(values).rolling(n).mean()


class SmaCross(Strategy):
    def init(self):
        self.fast = self.I(sma, self.data.Close, fast)
        self.slow = self.I(sma, self.data.Close, slow)

    def next(self):
        if crossover(self.fast, self.slow):
            self.position.close()
            self.buy(size=1)
        elif crossover(self.slow, self.fast):
            self.position.close()
            self.sell(size=1)


frame = pd.read_csv(path, index_col="timestamp", parse_dates=["timestamp"])
frame.columns = [c.capitalize() for c in frame.columns]
with warnings.catch_warnings():
    warnings.simplefilter("ignore")
    wall, cpu = time.perf_counter(), time.process_time()
    stats = Backtest(frame, SmaCross, cash=cash, commission=0.0).run()
    run_cpu_ms = (time.process_time() - cpu) * 1e3
    run_wall_ms = (time.perf_counter() - wall) * 1e3

print(
    json.dumps(
        {
            "engine": "backtesting.py",
            "version": importlib.metadata.version("backtesting"),
            "bars": len(frame),
            "trades": int(stats["# Trades"]),
            "final_equity": float(stats["Equity Final [$]"]),
            "run_wall_ms": run_wall_ms,
            "run_cpu_ms": run_cpu_ms,
        }
    )
)
