"""A portfolio strategy with brackets: on every instrument of the run, while flat, buy a dip
with a limit 1 % under the close (re-priced every bar until it fills), a take-profit 3 % above
the limit and a stop-loss 2 % below it (one-cancels-other once the entry fills). ``on_fill`` keeps a log
of what filled.

    python examples/python/bracket_dip.py
"""

import tradeloom


class BracketDip(tradeloom.Strategy):
    def __init__(self, quantity=10, dip=0.01, take=0.03, stop=0.02):
        super().__init__(quantity=quantity, dip=dip, take=take, stop=stop)
        self.quantity, self.dip, self.take, self.stop = quantity, dip, take, stop
        self.filled = []

    def on_bar(self, ctx, bar):
        if ctx.position(bar.symbol) != 0:
            return
        for order in ctx.open_orders(bar.symbol):  # an entry that did not fill: re-price it
            ctx.cancel(order.id)
        limit = bar.close * (1 - self.dip)
        ctx.bracket(
            "buy",
            self.quantity,
            limit=limit,
            take_profit=limit * (1 + self.take),
            stop_loss=limit * (1 - self.stop),
            symbol=bar.symbol,
        )

    def on_fill(self, ctx, fill):
        self.filled.append((fill.order_id, fill.side, fill.quantity, fill.price))


if __name__ == "__main__":
    from pathlib import Path

    spec = Path(__file__).resolve().parents[1] / "specs" / "goog_sma_cross.yaml"
    strategy = BracketDip()
    result = tradeloom.backtest(spec, strategy=strategy)
    print(result)
    print("fills", len(strategy.filled), "final equity", result.metrics["final_equity"])
