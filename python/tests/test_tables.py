"""A result's tables come from the run itself, through the Arrow C stream interface: they are
the run folder's rows (same columns, types and values as reading the files), without the files
being read back and without a copy on the way to pyarrow.

Run: ``python -m unittest discover -s python/tests`` with the package installed.
"""

import tempfile
import unittest
from pathlib import Path

import pyarrow as pa
import pyarrow.csv as pacsv
import pyarrow.parquet as pq

import tradeloom
from tradeloom._tradeloom import ArrowTable

REPO = Path(__file__).resolve().parents[2]
SPEC = REPO / "examples" / "specs" / "goog_sma_cross.yaml"
FILES = {"fills": "fills.csv", "orders": "orders.csv", "trades": "trades.csv", "equity": "equity.parquet"}


def read_as_files(run_dir: Path, name: str) -> pa.Table:
    """A table read from the run folder as the package did before: CSV columns all as text,
    the equity curve from Parquet."""
    path = run_dir / FILES[name]
    if path.suffix == ".parquet":
        return pq.read_table(path)
    with open(path, encoding="utf-8") as f:
        columns = f.readline().rstrip("\n").split(",")
    options = pacsv.ConvertOptions(column_types={c: "string" for c in columns})
    return pacsv.read_csv(path, convert_options=options)


class Tables(unittest.TestCase):
    def setUp(self):
        self.scratch = tempfile.TemporaryDirectory(prefix="tradeloom-py-tables-")
        self.data_dir = Path(self.scratch.name)

    def tearDown(self):
        self.scratch.cleanup()

    def test_tables_equal_the_files_and_outlive_them(self):
        result = tradeloom.backtest(SPEC, data_dir=self.data_dir)
        from_files = {name: read_as_files(result.run_dir, name) for name in FILES}
        # Nothing asked for yet: remove the files the tables used to be read from.
        for file in FILES.values():
            (result.run_dir / file).unlink()
        for name, expected in from_files.items():
            with self.subTest(table=name):
                table = getattr(result, name)
                self.assertIsInstance(table, pa.Table)
                self.assertTrue(
                    table.schema.equals(expected.schema, check_metadata=True),
                    f"{table.schema}\n!=\n{expected.schema}",
                )
                self.assertTrue(table.equals(expected))
        self.assertEqual(
            [result.fills.num_rows, result.orders.num_rows, result.trades.num_rows, result.equity.num_rows],
            [187, 187, 94, 2148],
        )
        self.assertEqual(result.fills.schema.field("price").type, pa.string())
        self.assertEqual(result.equity.schema.field("equity").type, pa.decimal128(18, 2))
        self.assertEqual(str(result.equity.column("equity")[-1]), result.metrics["final_equity"])

    def test_tables_cross_by_the_capsule_interface_without_a_copy(self):
        result = tradeloom.backtest(SPEC, data_dir=self.data_dir)
        native = result._arrow["fills"]
        self.assertIsInstance(native, ArrowTable)
        self.assertEqual(native.num_rows, 187)
        capsule = native.__arrow_c_stream__()
        self.assertEqual(type(capsule).__name__, "PyCapsule")
        del capsule  # never consumed: released with the capsule
        once, again = pa.table(native), pa.RecordBatchReader.from_stream(native).read_all()
        self.assertTrue(once.equals(result.fills) and again.equals(result.fills))
        # Each import points at the buffers built in Rust during the run: a copy would live
        # elsewhere.
        def data_address(table):
            return table.column("price").chunk(0).buffers()[2].address
        self.assertEqual(data_address(once), data_address(again))
        self.assertEqual(data_address(result.fills), data_address(once))
        # pyarrow.table() of the result's table works too (it is a pyarrow.Table).
        self.assertTrue(pa.table(result.fills).equals(once))


if __name__ == "__main__":
    unittest.main()
