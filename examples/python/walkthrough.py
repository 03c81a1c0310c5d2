# %% [markdown]
# # tradeloom from a notebook
#
# A walkthrough in cells (`# %%`): open it as a notebook with jupytext, VS Code or PyCharm, or
# run it as a script (`python examples/python/walkthrough.py`). It needs the package
# (`pip install ./python`) and pandas.

# %%
import sys
from pathlib import Path

import tradeloom

HERE = Path(__file__).resolve().parent if "__file__" in globals() else Path.cwd()
REPO = HERE.parents[1] if (HERE.parents[1] / "examples").is_dir() else Path.cwd()
sys.path.insert(0, str(REPO / "examples" / "python"))
from sma_cross import SmaCross  # noqa: E402

SPEC = REPO / "examples" / "specs" / "goog_sma_cross.yaml"

# %% [markdown]
# ## The built-in strategy, then the same rule written in Python

# %%
builtin = tradeloom.backtest(SPEC)
python = tradeloom.backtest(SPEC, strategy=SmaCross(fast=10, slow=20, quantity=10))
print(builtin.metrics["final_equity"], python.metrics["final_equity"])

# %% [markdown]
# Both wrote a run folder (journal, hashes, report) that `tradeloom verify RUN_ID` checks; the
# tables are Arrow tables.

# %%
trades = python.trades.to_pandas()
print(trades[["entry_ts", "exit_ts", "side", "quantity", "net_pnl"]].head())

# %% [markdown]
# ## A strategy of your own: a bracket around every entry

# %%
class Bracketed(tradeloom.Strategy):
    """Buys the first bar of each 20 when flat, with a take-profit 5 % above the close and a
    stop-loss 3 % below it."""

    def __init__(self, every=20, quantity=10, take=0.05, stop=0.03):
        super().__init__(every=every, quantity=quantity, take=take, stop=stop)
        self.every, self.quantity, self.take, self.stop, self.n = every, quantity, take, stop, 0

    def on_bar(self, ctx, bar):
        self.n += 1
        if self.n % self.every == 1 and ctx.position() == 0:
            ctx.bracket(
                "buy",
                self.quantity,
                take_profit=bar.close * (1 + self.take),
                stop_loss=bar.close * (1 - self.stop),
            )


result = tradeloom.backtest(SPEC, strategy=Bracketed())
equity = result.equity.to_pandas()
print(result.metrics["total_return_pct"], len(equity), "equity points")

# %%
try:
    import matplotlib.pyplot as plt  # optional

    # The money columns are exact decimals (Python `Decimal` in pandas): floats to plot them.
    equity.assign(equity=equity["equity"].astype(float)).plot(
        x="ts", y="equity", title="Bracketed on GOOG"
    )
    plt.show()
except ImportError:
    pass
