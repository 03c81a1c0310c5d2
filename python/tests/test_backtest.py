"""The tradeloom package against the tradeloom binary: the same spec gives the same run folder
contents, frames stand in for bar files, and bad input raises a clear error.

Run: ``python -m unittest discover -s python/tests`` with the package installed (``pip install
./python`` or ``maturin develop``) and ``TRADELOOM_BIN`` naming a built ``tradeloom`` binary.
"""

import json
import os
import subprocess
import tempfile
import unittest
from pathlib import Path

import pyarrow as pa
import pyarrow.csv as pacsv

import tradeloom

REPO = Path(__file__).resolve().parents[2]
SPEC = REPO / "examples" / "specs" / "goog_sma_cross.yaml"
BARS = REPO / "examples" / "data" / "goog_1d.csv"


def binary() -> str:
    path = os.environ.get("TRADELOOM_BIN", "")
    if not Path(path).is_file():
        raise AssertionError(f"TRADELOOM_BIN must name a built tradeloom binary (got {path!r})")
    return path


class Backtest(unittest.TestCase):
    def setUp(self):
        self.scratch = tempfile.TemporaryDirectory(prefix="tradeloom-py-test-")
        self.data_dir = Path(self.scratch.name)

    def tearDown(self):
        self.scratch.cleanup()

    def test_same_run_folder_as_the_cli(self):
        result = tradeloom.backtest(SPEC, data_dir=self.data_dir)
        self.assertEqual(result.status, "completed")
        self.assertEqual(result.run_dir, self.data_dir / "runs" / result.run_id)
        out = subprocess.run(
            [binary(), "run", str(SPEC), "--data-dir", str(self.data_dir), "--json"],
            check=True, capture_output=True, text=True,
        )
        cli = json.loads(out.stdout.strip().splitlines()[-1])
        cli_dir = Path(cli["run_dir"])
        # Byte for byte, but for the run id and wall-clock fields no two runs share.
        for name in ["fills.csv", "orders.csv", "trades.csv", "metrics.json", "equity.parquet"]:
            self.assertEqual(
                (result.run_dir / name).read_bytes(), (cli_dir / name).read_bytes(), name
            )
        self.assertEqual(result.metrics["final_equity"], "112583.70")
        self.assertEqual(result.metrics["trades"], 93)
        # The tables are the run folder's files.
        self.assertIsInstance(result.fills, pa.Table)
        self.assertEqual(result.fills.num_rows, 187)
        self.assertEqual(result.trades.num_rows, 94)
        self.assertEqual(result.orders.num_rows, 187)
        self.assertEqual(result.equity.num_rows, 2148)
        self.assertEqual(result.fills.schema.field("price").type, pa.string())
        # The folder verifies like any run's.
        subprocess.run(
            [binary(), "verify", result.run_id, "--data-dir", str(self.data_dir)],
            check=True, capture_output=True,
        )

    def test_frames_stand_in_for_bar_files(self):
        from_file = tradeloom.backtest(SPEC, data_dir=self.data_dir)
        table = pacsv.read_csv(BARS)
        for frame in [table, {"GOOG": table}] + ([table.to_pandas()] if _has("pandas") else []):
            with self.subTest(kind=type(frame).__name__):
                result = tradeloom.backtest(SPEC, data=frame, data_dir=self.data_dir)
                self.assertTrue(result.fills.equals(from_file.fills))
                self.assertEqual(
                    (result.run_dir / "fills.csv").read_bytes(),
                    (from_file.run_dir / "fills.csv").read_bytes(),
                )
        # The frame is kept under frames/, named by its hash, and the run points at it.
        spec_text = (result.run_dir / "run_spec.yaml").read_text()
        frames = list((self.data_dir / "frames").glob("*.arrow"))
        self.assertTrue(frames and any(f.name in spec_text for f in frames), spec_text)

    def test_a_spec_dict(self):
        spec = {
            "name": "dict-spec",
            "mode": "backtest",
            "venue": "sim",
            "instruments": [{"symbol": "GOOG", "price_precision": 2, "size_precision": 0}],
            "data": [{"symbol": "GOOG", "path": str(BARS)}],
            "strategy": {"name": "sma_cross", "params": {"fast": 10, "slow": 20, "quantity": 10}},
            "execution": {"fill_model": "next_open"},
            "account": {"initial_cash": 100000, "currency": "USD"},
        }
        result = tradeloom.backtest(spec, data_dir=self.data_dir)
        self.assertEqual(result.metrics["final_equity"], "112583.70")

    def test_bad_input_is_refused_and_writes_nothing(self):
        cases = [
            ({"name": "x"}, None, "missing field `mode`"),
            (SPEC, {"MSFT": pacsv.read_csv(BARS)}, "`MSFT` is not an instrument of the spec"),
            (REPO / "no-such-spec.yaml", None, "cannot read the spec"),
        ]
        for spec, data, message in cases:
            with self.subTest(message=message):
                with self.assertRaises(tradeloom.SpecError) as caught:
                    tradeloom.backtest(spec, data=data, data_dir=self.data_dir)
                self.assertIn(message, str(caught.exception))
        self.assertFalse((self.data_dir / "runs").exists() and any((self.data_dir / "runs").iterdir()))
        with self.assertRaises(TypeError):
            tradeloom.backtest(SPEC, data=[1, 2, 3], data_dir=self.data_dir)


def _has(module: str) -> bool:
    try:
        __import__(module)
        return True
    except ImportError:
        return False


if __name__ == "__main__":
    unittest.main()
