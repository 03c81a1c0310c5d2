"""backtesting.py's run in a warm process, for `bench/python_strategies.py` (our harness, not
backtesting.py code). Usage: python backtesting_warm.py BARS.csv FAST SLOW CASH

Loads the bars (not timed), then times `Backtest(...).run()` of the sma cross of
`backtesting_run.py` (cross up: close, buy 1; cross down: close, sell 1; next-open fills, no
commission) and prints one JSON line: wall and CPU milliseconds, trades, final equity.
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
    cpu_ms = (time.process_time() - cpu) * 1e3
    wall_ms = (time.perf_counter() - wall) * 1e3

print(
    json.dumps(
        {
            "engine": "backtesting.py",
            "version": importlib.metadata.version("backtesting"),
            "bars": len(frame),
            "wall_ms": wall_ms,
            "cpu_ms": cpu_ms,
            "trades": int(stats["# Trades"]),
            "final_equity": float(stats["Equity Final [$]"]),
        }
    )
)
