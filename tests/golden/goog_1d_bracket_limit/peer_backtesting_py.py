"""Limit entries with stop-loss/take-profit brackets on GOOG daily, run in backtesting.py.

Generates the reference files of this folder (see README.md):

    python3 -m venv /tmp/bt && /tmp/bt/bin/pip install backtesting==0.6.6
    /tmp/bt/bin/python peer_backtesting_py.py ../../../examples/data/goog_1d.csv

Prices are derived in integer cents from the CSV text (not from floats), so both engines
place exactly the same orders.
"""

import csv
import json
import sys

import pandas as pd
from backtesting import Backtest, Strategy

path = sys.argv[1]
with open(path, newline="") as f:
    rows = list(csv.reader(f))[1:]
CENTS = [round(float(r[4]) * 100) for r in rows]  # closes, exact in cents

data = pd.read_csv(path, parse_dates=[0], index_col=0)
data.columns = [c.capitalize() for c in data.columns]


def floor_pct(c, pct):
    return c * pct // 100


def ceil_pct(c, pct):
    return -((-c * pct) // 100)


class BracketLimit(Strategy):
    def init(self):
        pass

    def next(self):
        i = len(self.data) - 1
        if self.position:
            return
        for o in list(self.orders):
            o.cancel()
        if i < 19:
            return
        c = CENTS[i]
        window = sum(CENTS[i - 19 : i + 1])
        if c * 20 > window:
            self.buy(
                size=10,
                limit=floor_pct(c, 99) / 100,
                sl=floor_pct(c, 95) / 100,
                tp=floor_pct(c, 105) / 100,
            )
        elif c * 20 < window:
            self.sell(
                size=10,
                limit=ceil_pct(c, 101) / 100,
                sl=ceil_pct(c, 105) / 100,
                tp=ceil_pct(c, 95) / 100,
            )


bt = Backtest(data, BracketLimit, cash=100_000, commission=0, trade_on_close=False,
              exclusive_orders=False, hedging=False)
stats = bt.run()
trades = stats._trades
with open("backtesting_py_trades.csv", "w", newline="") as f:
    w = csv.writer(f)
    w.writerow(["size", "entry_bar", "exit_bar", "entry_price", "exit_price", "pnl"])
    for t in trades.itertuples():
        w.writerow([t.Size, t.EntryBar, t.ExitBar, f"{t.EntryPrice:.2f}", f"{t.ExitPrice:.2f}",
                    f"{t.PnL:.2f}"])
summary = {
    "engine": "backtesting.py 0.6.6",
    "trades": int(len(trades)),
    "final_equity": round(float(stats["Equity Final [$]"]), 2),
    "open_position": int(bt._results._strategy.position.size)
    if hasattr(bt._results, "_strategy") else None,
}
with open("backtesting_py_summary.json", "w") as f:
    json.dump(summary, f, indent=2)
    f.write("\n")
print(summary)
