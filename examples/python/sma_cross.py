"""The built-in ``sma_cross`` written as an in-process Python strategy.

Its orders, fills and journal events equal the built-in's, event for event: the averages are
the engine's own ``tradeloom.SMA`` (exact integer sums) and ``tradeloom.Crossover`` compares
them exactly. Run it with::

    python examples/python/sma_cross.py            # GOOG daily, SMA(10/20), 10 shares

or from a notebook::

    import tradeloom
    from sma_cross import SmaCross
    result = tradeloom.backtest("examples/specs/goog_sma_cross.yaml",
                                strategy=SmaCross(fast=10, slow=20, quantity=10))
    result.trades.to_pandas()
"""

import tradeloom


class SmaCross(tradeloom.Strategy):
    """Long on a cross up of the fast SMA over the slow one, short (or flat with
    ``long_only``) on a cross down."""

    def __init__(self, fast=10, slow=20, quantity=10, long_only=False):
        super().__init__(fast=fast, slow=slow, quantity=quantity, long_only=long_only)
        self.fast = tradeloom.SMA(fast)
        self.slow = tradeloom.SMA(slow)
        self.cross = tradeloom.Crossover()
        self.quantity = quantity
        self.long_only = long_only

    def on_bar(self, ctx, bar):
        self.fast.update(bar.close)
        self.slow.update(bar.close)
        if not self.slow.ready:
            return
        cross = self.cross.update(self.fast, self.slow)
        if cross == "up":
            if ctx.position() < 0:
                ctx.close_position()
            if ctx.position() <= 0:
                ctx.buy(self.quantity)
        elif cross == "down":
            if ctx.position() > 0:
                ctx.close_position()
            if ctx.position() >= 0 and not self.long_only:
                ctx.sell(self.quantity)


if __name__ == "__main__":
    from pathlib import Path

    spec = Path(__file__).resolve().parents[1] / "specs" / "goog_sma_cross.yaml"
    result = tradeloom.backtest(spec, strategy=SmaCross(fast=10, slow=20, quantity=10))
    print(result)
    print("final equity", result.metrics["final_equity"], "trades", result.metrics["trades"])
