"""The built-in `sma_cross` rule as a sandboxed script strategy, exactly: integer sums of raw
closes compared by cross-multiplication, a cross only when the sign of fast - slow goes from -1
to +1 (or back) between consecutive bars. `examples/specs/goog_sma_cross_script.yaml` runs it;
its orders and fills equal those of `goog_sma_cross.yaml` (the built-in)."""
from collections import deque
from tradeloom.sandbox import Strategy


class SmaCross(Strategy):
    def __init__(self, fast, slow, quantity, long_only=False):
        self.fast = fast
        self.slow = slow
        self.quantity = quantity
        self.long_only = long_only
        self.closes = deque()
        self.fast_sum = 0
        self.slow_sum = 0
        self.previous = None

    def on_bar(self, ctx, bar):
        c = bar.close_raw
        closes = self.closes
        closes.append(c)
        self.fast_sum += c
        self.slow_sum += c
        n = len(closes)
        if n > self.fast:
            self.fast_sum -= closes[-self.fast - 1]
        if n > self.slow:
            self.slow_sum -= closes.popleft()
            n -= 1
        if n < self.slow:
            return
        a = self.fast_sum * self.slow
        b = self.slow_sum * self.fast
        sign = (a > b) - (a < b)
        previous = self.previous
        self.previous = sign
        if previous == -1 and sign == 1:
            if ctx.position_raw < 0:
                ctx.close_position()
            if ctx.position_raw <= 0:
                ctx.buy(self.quantity)
        elif previous == 1 and sign == -1:
            if ctx.position_raw > 0:
                ctx.close_position()
            if ctx.position_raw >= 0 and not self.long_only:
                ctx.sell(self.quantity)
