"""``tradeloom.Strategy``: the base class of strategies written in Python and run in process by
:func:`tradeloom.backtest` (the engine calls them; indicators and accounting stay in Rust).

A strategy::

    import tradeloom

    class SmaCross(tradeloom.Strategy):
        def __init__(self, fast=10, slow=30, quantity=1):
            super().__init__(fast=fast, slow=slow, quantity=quantity)
            self.fast, self.slow = tradeloom.SMA(fast), tradeloom.SMA(slow)
            self.cross = tradeloom.Crossover()
            self.quantity = quantity

        def on_bar(self, ctx, bar):
            self.fast.update(bar.close)
            self.slow.update(bar.close)
            if self.slow.ready:
                cross = self.cross.update(self.fast, self.slow)
                if cross == "up" and ctx.position() <= 0:
                    ctx.close_position()
                    ctx.buy(self.quantity)

    result = tradeloom.backtest("spec.yaml", strategy=SmaCross(fast=10, slow=30))

The engine calls ``on_start(ctx)`` once, ``on_bar(ctx, bar)`` for every bar of every
instrument of the run in event order (one object sees them all: ``bar.symbol`` says whose),
``on_fill(ctx, fill)`` after each fill of the strategy's orders and ``on_stop(ctx)`` once at the
end. ``ctx`` (a :class:`tradeloom.Context`) shows the run at that moment and queues orders,
which the engine carries out when the method returns. An exception ends the run as failed,
with the traceback in the journal and in :class:`tradeloom.RunFailed`.
"""

from __future__ import annotations

import json
from typing import Any, Dict, Tuple

__all__ = ["Strategy"]

_HOOKS = ("on_start", "on_bar", "on_fill", "on_stop")


class Strategy:
    """Subclass it and override the callbacks you need. Keyword arguments given to
    ``super().__init__(**params)`` are the strategy's parameters: they are recorded in the
    run's spec (so they must be JSON values) and kept in ``self.params``."""

    def __init__(self, **params: Any) -> None:
        self.params: Dict[str, Any] = dict(params)

    def on_start(self, ctx) -> None:
        """Called once, before the first bar."""

    def on_bar(self, ctx, bar) -> None:
        """Called for every bar (``bar.symbol``, ``bar.ts``, ``bar.open`` ... ``bar.volume``)."""

    def on_fill(self, ctx, fill) -> None:
        """Called after each fill of one of the strategy's orders."""

    def on_stop(self, ctx) -> None:
        """Called once after the last bar; orders queued here are cancelled at the end."""


def _describe(strategy: Strategy) -> Tuple[Strategy, str, str, Tuple[str, ...]]:
    """What the native module needs of a strategy object: the object, its name in the run
    (``python:module.Class``), its parameters as JSON and the callbacks it overrides."""
    if not isinstance(strategy, Strategy):
        raise TypeError(
            "strategy: expected an instance of a tradeloom.Strategy subclass, got "
            f"{type(strategy).__name__}"
        )
    cls = type(strategy)
    name = f"python:{cls.__module__}.{cls.__qualname__}"
    params = getattr(strategy, "params", None)
    if params is None:
        params = {}
    if not isinstance(params, dict):
        raise TypeError(f"strategy.params: expected a dict, got {type(params).__name__}")
    for key, value in params.items():
        try:
            json.dumps(value, allow_nan=False)
        except (TypeError, ValueError) as e:
            raise TypeError(
                f"strategy.params[{key!r}]: must be a JSON value (it is recorded in the run's "
                f"spec), got {type(value).__name__}: {e}"
            ) from None
    hooks = tuple(h for h in _HOOKS if getattr(cls, h) is not getattr(Strategy, h))
    return strategy, name, json.dumps(params, sort_keys=True), hooks
