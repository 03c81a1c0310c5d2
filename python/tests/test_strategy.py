"""Strategies written in Python, run in process: the built-in ``sma_cross`` rewritten in Python
gives the same run event for event, the context shows the run and trades any instrument, and
an exception in user code fails the run with its traceback.

Run: ``python -m unittest discover -s python/tests`` with the package installed.
"""

import json
import sys
import tempfile
import unittest
from pathlib import Path

import tradeloom

REPO = Path(__file__).resolve().parents[2]
SPEC = REPO / "examples" / "specs" / "goog_sma_cross.yaml"
sys.path.insert(0, str(REPO / "examples" / "python"))
sys.path.insert(0, str(Path(__file__).resolve().parent))

from sma_cross import SmaCross  # noqa: E402
from bracket_dip import BracketDip  # noqa: E402
from test_tables import read_as_files  # noqa: E402


def journal(run_dir: Path):
    """The journal's events without what differs between two runs of the same logic: the run
    id, wall-clock fields and the strategy's name."""
    events = []
    for line in (run_dir / "journal.jsonl").read_text().splitlines():
        event = json.loads(line)
        for key in ("run_id", "wall_ts", "strategy"):
            event.pop(key, None)
        events.append(event)
    return events


class Scratch(unittest.TestCase):
    def setUp(self):
        self.scratch = tempfile.TemporaryDirectory(prefix="tradeloom-py-strategy-")
        self.data_dir = Path(self.scratch.name)

    def tearDown(self):
        self.scratch.cleanup()

    def spec(self, **changes):
        spec = {
            "name": "py-strategy",
            "mode": "backtest",
            "venue": "sim",
            "instruments": [{"symbol": "GOOG", "price_precision": 2, "size_precision": 0}],
            "data": [{"symbol": "GOOG", "path": str(REPO / "examples" / "data" / "goog_1d.csv")}],
            "execution": {"fill_model": "next_open", "fee_bps": 0, "slippage_bps": 0},
            "account": {"initial_cash": 100000, "currency": "USD"},
        }
        spec.update(changes)
        return spec


class SameAsTheBuiltin(Scratch):
    def test_sma_cross_in_python_is_the_builtin_event_for_event(self):
        builtin = tradeloom.backtest(SPEC, data_dir=self.data_dir)
        python = tradeloom.backtest(
            SPEC, strategy=SmaCross(fast=10, slow=20, quantity=10), data_dir=self.data_dir
        )
        self.assertEqual(python.status, "completed")
        for name in ["fills.csv", "orders.csv", "trades.csv", "metrics.json", "equity.parquet"]:
            self.assertEqual(
                (python.run_dir / name).read_bytes(), (builtin.run_dir / name).read_bytes(), name
            )
        self.assertEqual(journal(python.run_dir), journal(builtin.run_dir))
        self.assertEqual(python.metrics["final_equity"], "112583.70")
        # The run records which strategy ran, with its parameters.
        recorded = (python.run_dir / "run_spec.yaml").read_text()
        self.assertIn("python:sma_cross.SmaCross", recorded)
        self.assertIn("slow", recorded)

    def test_long_only_and_a_spec_dict_without_a_strategy(self):
        result = tradeloom.backtest(
            self.spec(), strategy=SmaCross(fast=10, slow=20, quantity=10, long_only=True),
            data_dir=self.data_dir,
        )
        sides = set(result.fills.column("side").to_pylist())
        self.assertEqual(sides, {"BUY", "SELL"})
        # Long only: the position never goes below zero.
        net = 0
        for side, q in zip(result.fills.column("side").to_pylist(),
                           result.fills.column("quantity").to_pylist()):
            net += int(q) if side == "BUY" else -int(q)
            self.assertGreaterEqual(net, 0)


class Failures(Scratch):
    def test_an_exception_fails_the_run_with_the_traceback_in_the_error_and_the_journal(self):
        class Broken(tradeloom.Strategy):
            def on_bar(self, ctx, bar):
                if bar.close > 0 and ctx.position() == 0 and getattr(self, "n", 0) > 5:
                    return 1 / 0  # the line the traceback names
                self.n = getattr(self, "n", 0) + 1

        with self.assertRaises(tradeloom.RunFailed) as caught:
            tradeloom.backtest(self.spec(), strategy=Broken(), data_dir=self.data_dir)
        message, run_id, run_dir = caught.exception.args
        self.assertIn("ZeroDivisionError", message)
        self.assertIn("Traceback (most recent call last)", message)
        self.assertIn("return 1 / 0", message)
        self.assertIn("raised in on_bar", message)
        events = [json.loads(l) for l in (Path(run_dir) / "journal.jsonl").read_text().splitlines()]
        failed = [e for e in events if e.get("event") == "run_failed"]
        self.assertEqual(len(failed), 1, events[-3:])
        self.assertIn("ZeroDivisionError", failed[0]["error"])
        meta = json.loads((Path(run_dir) / "metadata.json").read_text())
        self.assertEqual(meta["status"], "failed")

    def test_a_bad_order_raises_in_the_users_own_line(self):
        class BadQuantity(tradeloom.Strategy):
            def on_bar(self, ctx, bar):
                ctx.buy("1.5")  # GOOG trades whole shares

        with self.assertRaises(tradeloom.RunFailed) as caught:
            tradeloom.backtest(self.spec(), strategy=BadQuantity(), data_dir=self.data_dir)
        message = caught.exception.args[0]
        self.assertIn("ValueError: buy: quantity `1.5`", message)
        self.assertIn('ctx.buy("1.5")', message)

    def test_unknown_symbol_and_context_kept_past_its_callback(self):
        kept = []

        class Keeper(tradeloom.Strategy):
            def on_start(self, ctx):
                kept.append(ctx)

            def on_bar(self, ctx, bar):
                ctx.position("NOPE")

        with self.assertRaises(tradeloom.RunFailed) as caught:
            tradeloom.backtest(self.spec(), strategy=Keeper(), data_dir=self.data_dir)
        self.assertIn("symbol `NOPE` is not an instrument of this run (GOOG)", caught.exception.args[0])
        with self.assertRaises(RuntimeError) as outside:
            kept[0].buy(1)
        self.assertIn("usable only during the callback", str(outside.exception))

    def test_refused_before_anything_is_written(self):
        with self.assertRaises(TypeError):
            tradeloom.backtest(self.spec(), strategy=object(), data_dir=self.data_dir)

        class Params(tradeloom.Strategy):
            def __init__(self):
                super().__init__(when=object())

        with self.assertRaises(TypeError) as caught:
            tradeloom.backtest(self.spec(), strategy=Params(), data_dir=self.data_dir)
        self.assertIn("strategy.params['when']", str(caught.exception))
        self.assertFalse((self.data_dir / "runs").exists())

    def test_an_object_runs_once(self):
        strategy = SmaCross()
        tradeloom.backtest(self.spec(), strategy=strategy, data_dir=self.data_dir)
        runs = sorted((self.data_dir / "runs").iterdir())
        # Its indicators hold the first run's bars: a second run is refused before it starts.
        with self.assertRaises(ValueError) as caught:
            tradeloom.backtest(self.spec(), strategy=strategy, data_dir=self.data_dir)
        self.assertIn("already ran a backtest", str(caught.exception))
        self.assertEqual(sorted((self.data_dir / "runs").iterdir()), runs)


class Context(Scratch):
    def test_portfolio_view_brackets_and_fills(self):
        seen = []

        class Watch(BracketDip):
            def on_bar(self, ctx, bar):
                seen.append((bar.symbol, ctx.symbol, ctx.position(), ctx.cash, ctx.equity,
                             len(ctx.open_orders()), ctx.last_price(), bar.close))
                super().on_bar(ctx, bar)

        strategy = Watch(quantity=10)
        result = tradeloom.backtest(self.spec(), strategy=strategy, data_dir=self.data_dir)
        self.assertEqual(result.status, "completed")
        orders = result.orders.to_pylist()
        # Entries carry their OCO legs: a take-profit and a stop-loss per filled entry.
        legs = [o for o in orders if o["parent_id"]]
        self.assertGreater(len(legs), 10)
        # Legs, cancels and their reasons: the table is still the file's rows, field for field.
        self.assertTrue(result.orders.equals(read_as_files(result.run_dir, "orders")))
        self.assertEqual(len(strategy.filled), result.fills.num_rows)
        self.assertEqual(seen[0][0], "GOOG")
        self.assertEqual(seen[0][1], "GOOG")
        self.assertEqual(seen[0][3], 100000.0)
        # The last price is the close of the bar being processed; equity is cash plus the
        # position at it, at every bar.
        for symbol, _, position, cash, equity, _, last, close in seen:
            self.assertEqual(last, close)
            self.assertAlmostEqual(equity, cash + position * last, places=4)

    def test_bars_kept_by_the_strategy_keep_their_values(self):
        kept, seen = [], []

        class Keeper(tradeloom.Strategy):
            def on_bar(self, ctx, bar):
                seen.append((bar.ts, bar.close))
                if len(seen) % 3 == 0:
                    kept.append(bar)  # every third bar kept; the others may be refilled

        tradeloom.backtest(self.spec(), strategy=Keeper(), data_dir=self.data_dir)
        self.assertGreater(len(kept), 100)
        self.assertEqual([(b.ts, b.close) for b in kept], seen[2::3])

    def test_two_instruments_one_object(self):
        data = REPO / "examples" / "data" / "goog_1d.csv"
        spec = self.spec(
            instruments=[
                {"symbol": "GOOG", "price_precision": 2, "size_precision": 0},
                {"symbol": "GOOG2", "price_precision": 2, "size_precision": 0},
            ],
            data=[{"symbol": "GOOG", "path": str(data)}, {"symbol": "GOOG2", "path": str(data)}],
        )
        symbols = []

        class Pair(tradeloom.Strategy):
            def on_bar(self, ctx, bar):
                symbols.append(bar.symbol)
                if len(symbols) == 2:
                    self.ids = (ctx.buy(5, symbol="GOOG"), ctx.sell(5, symbol="GOOG2"))

        strategy = Pair()
        result = tradeloom.backtest(spec, strategy=strategy, data_dir=self.data_dir)
        self.assertEqual(symbols[:4], ["GOOG", "GOOG2", "GOOG", "GOOG2"])
        self.assertEqual(strategy.ids, (1, 2))
        fills = result.fills.to_pylist()
        self.assertEqual([(f["symbol"], f["side"]) for f in fills[:2]],
                         [("GOOG", "BUY"), ("GOOG2", "SELL")])


class Examples(Scratch):
    def test_the_notebook_walkthrough_runs(self):
        import os
        import runpy

        os.environ["TRADELOOM_DATA_DIR"] = str(self.data_dir)
        try:
            scope = runpy.run_path(str(REPO / "examples" / "python" / "walkthrough.py"))
        finally:
            del os.environ["TRADELOOM_DATA_DIR"]
        self.assertEqual(scope["python"].metrics["final_equity"], "112583.70")
        self.assertEqual(scope["result"].status, "completed")
        self.assertGreater(scope["result"].metrics["trades"], 0)


class Indicators(unittest.TestCase):
    def test_sma_ema_std_and_crossover(self):
        sma, ema, std = tradeloom.SMA(3), tradeloom.EMA(3), tradeloom.RollingStd(4)
        for v in [2.0, 4.0, 6.0]:
            sma.update(v)
            ema.update(v)
        self.assertEqual(sma.value, 4.0)
        self.assertAlmostEqual(ema.value, 4.5)
        for v in [2, "4", 4, 4, 5]:
            std.update(v)
        self.assertAlmostEqual(std.value, 0.5)
        self.assertAlmostEqual(std.mean, 4.25)
        self.assertIsNone(tradeloom.SMA(5).value)
        with self.assertRaises(ValueError):
            tradeloom.SMA(0)
        with self.assertRaises(TypeError):
            sma.update(True)
        fast, slow, cross = tradeloom.SMA(2), tradeloom.SMA(3), tradeloom.Crossover()
        got = []
        for v in [5, 4, 3, 4, 6, 1]:
            fast.update(v)
            slow.update(v)
            if slow.ready:
                got.append(cross.update(fast, slow))
        self.assertEqual(got, [None, None, "up", "down"])


if __name__ == "__main__":
    unittest.main()
