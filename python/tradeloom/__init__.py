"""tradeloom from Python: run backtests with the same engine, and into the same run folders, as
the ``tradeloom`` command.

>>> import tradeloom
>>> result = tradeloom.backtest("examples/specs/goog_sma_cross.yaml")
>>> result.metrics["total_return_pct"], result.fills.num_rows

``spec`` is a run spec file or the same spec as a dict; ``strategy`` a
:class:`tradeloom.Strategy` object run in process in place of the spec's strategy; ``data``
replaces the spec's bar files with frames (pandas, polars or pyarrow), one per instrument. Every run writes a run folder under
the data dir (``data_dir=``, else ``$TRADELOOM_DATA_DIR``, else ``tradeloom-data``) with its
journal, hashes, metrics and report, exactly as ``tradeloom run`` does; ``tradeloom verify
RUN_ID`` checks it.
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any, Mapping, Optional, Union

__all__ = [
    "backtest",
    "Result",
    "Strategy",
    "Context",
    "Bar",
    "Fill",
    "Order",
    "SMA",
    "EMA",
    "RollingStd",
    "Crossover",
    "SpecError",
    "RunFailed",
    "__version__",
]

from ._tradeloom import (
    EMA,
    SMA,
    Bar,
    Context,
    Crossover,
    Fill,
    Order,
    RollingStd,
    RunFailed,
    SpecError,
    __version__,
)
from ._tradeloom import run_spec as _run_spec, run_spec_text as _run_spec_text
from .strategy import Strategy, _describe

SpecLike = Union[str, "os.PathLike[str]", Mapping[str, Any]]


class Result:
    """A finished run: its id, folder, metrics and tables.

    The orders, fills and trades tables were built in Rust while the run wrote its folder and
    reach pyarrow through the Arrow C stream interface without a copy; their files are not read
    back (they are the run's record, for ``tradeloom verify``). The equity curve, a row per bar,
    is decoded from the bytes of ``equity.parquet`` (read when the run ends) the first time it
    is asked for: keeping its rows in memory during every run cost ~10 % of a warm backtest
    for a table many callers never read."""

    def __init__(self, run_id: str, run_dir: str, status: str, tables: Mapping[str, Any]) -> None:
        self.run_id = run_id
        self.run_dir = Path(run_dir)
        self.status = status
        with open(self.run_dir / "metrics.json", encoding="utf-8") as f:
            self.metrics: dict = json.load(f)
        # name -> tradeloom._tradeloom.ArrowTable (``__arrow_c_stream__``); a pyarrow.Table once
        # asked for.
        self._arrow = dict(tables)
        self._tables: dict = {}
        # The file's bytes (compact: a few bytes a bar), so the table can be made later even
        # when the folder has gone.
        self._equity_parquet = (self.run_dir / "equity.parquet").read_bytes()

    def _table(self, name: str):
        if name not in self._tables:
            import pyarrow as pa

            if name == "equity":
                import pyarrow.parquet as pq

                self._tables[name] = pq.read_table(pa.BufferReader(self._equity_parquet))
            else:
                self._tables[name] = pa.table(self._arrow[name])
        return self._tables[name]

    @property
    def fills(self):
        """The rows of ``fills.csv`` as a ``pyarrow.Table`` (one row per execution; every column
        a string, exactly as in the file: cast decimals as you need)."""
        return self._table("fills")

    @property
    def orders(self):
        """The rows of ``orders.csv`` as a ``pyarrow.Table`` (one row per order, final state;
        string columns as in the file)."""
        return self._table("orders")

    @property
    def trades(self):
        """The rows of ``trades.csv`` as a ``pyarrow.Table`` (one row per round trip; string
        columns as in the file)."""
        return self._table("trades")

    @property
    def equity(self):
        """The rows of ``equity.parquet`` as a ``pyarrow.Table`` (ts, cash, equity,
        gross_exposure: a UTC timestamp and exact decimals, as a reader of the file gets them)."""
        return self._table("equity")

    def __repr__(self) -> str:
        return f"Result(run_id={self.run_id!r}, status={self.status!r}, run_dir={str(self.run_dir)!r})"


def _data_dir(data_dir: Optional[Union[str, "os.PathLike[str]"]]) -> Path:
    if data_dir is not None:
        return Path(data_dir)
    return Path(os.environ.get("TRADELOOM_DATA_DIR", "tradeloom-data"))


def _arrow_table(frame: Any, symbol: str):
    """A pyarrow Table from a pyarrow Table, a pandas or a polars DataFrame."""
    import pyarrow as pa

    if isinstance(frame, pa.Table):
        return frame
    if hasattr(frame, "to_arrow"):  # polars
        return frame.to_arrow()
    if type(frame).__module__.startswith("pandas"):
        index = frame.index
        # A DatetimeIndex (the usual pandas bars) becomes the timestamp column.
        keep_index = getattr(index, "dtype", None) is not None and str(index.dtype).startswith("datetime64")
        return pa.Table.from_pandas(frame, preserve_index=keep_index)
    raise TypeError(
        f"data[{symbol!r}]: expected a pyarrow Table or a pandas/polars DataFrame, "
        f"got {type(frame).__name__}"
    )


# Rows per record batch of a frame's file: the reader decodes a batch at a time, so a frame of
# millions of rows in one chunk is cut into batches this long (the size the run's reader uses).
_FRAME_BATCH_ROWS = 65_536


def _write_frames(data: Any, folder: Path) -> dict:
    """Writes each frame of ``data`` (a dict of frames by symbol, or one frame: key ``""``,
    the spec's only instrument) as an Arrow IPC file into ``folder``, named by the sha256 of
    its bytes, so the run folder's spec points at a file that stays; ``{symbol: path}``.

    Arrow IPC, not Parquet: the columns are written as they are in memory (no encoding, no
    compression) and the run reads them back without decoding, which for a warm notebook loop
    is most of what ``data=`` costs. A frame already kept (the same bytes) is not written
    again."""
    import hashlib

    import pyarrow as pa

    frames = dict(data) if isinstance(data, Mapping) else {"": data}
    folder.mkdir(parents=True, exist_ok=True)
    paths = {}
    for symbol, frame in frames.items():
        if not isinstance(symbol, str):
            raise TypeError(f"data: keys are symbols (str), got {symbol!r}")
        table = _arrow_table(frame, symbol)
        # Streamed to a partial file and hashed on the way: no copy of the whole frame in
        # memory (a 1M-row frame is ~48 MB); renamed to its hash, or dropped if already kept.
        partial = folder / f".frame.{os.getpid()}.{id(table):x}.partial"
        try:
            with open(partial, "wb") as raw:
                hashing = _HashingWriter(raw, hashlib.sha256())
                with pa.ipc.new_file(pa.PythonFile(hashing, mode="w"), table.schema) as writer:
                    for batch in table.to_batches(max_chunksize=_FRAME_BATCH_ROWS):
                        writer.write_batch(batch)
            path = folder / f"{hashing.hasher.hexdigest()}.arrow"
            if not path.exists():
                os.replace(partial, path)
        finally:
            # Already kept (the same bytes), or the write failed: the partial file goes.
            partial.unlink(missing_ok=True)
        paths[symbol] = os.fspath(path.resolve())
    return paths


class _HashingWriter:
    """A binary file that hashes what is written to it (for ``pyarrow.PythonFile``)."""

    def __init__(self, raw, hasher) -> None:
        self.raw = raw
        self.hasher = hasher
        self.closed = False

    def write(self, data) -> int:
        view = memoryview(data)
        self.hasher.update(view)
        return self.raw.write(view)

    def flush(self) -> None:
        self.raw.flush()

    def close(self) -> None:
        self.closed = True


def backtest(
    spec: SpecLike,
    strategy: Optional[Strategy] = None,
    data: Any = None,
    data_dir: Optional[Union[str, "os.PathLike[str]"]] = None,
) -> Result:
    """Runs a backtest of ``spec`` and returns its :class:`Result`.

    ``spec`` is a run spec file (YAML) or the spec as a dict (its relative paths resolve
    against the current folder). ``strategy``, an instance of a :class:`Strategy` subclass,
    runs in this process in place of the spec's strategy (which may then be left out); the
    run's spec records it as ``python:module.Class`` with its ``params``. An object runs once:
    make a new one for each backtest. ``data``, a frame (pandas, polars or pyarrow) for a
    one-instrument spec or a dict of frames by symbol, replaces the spec's bar files: each is
    written as an Arrow IPC file under ``<data_dir>/frames/`` (named by its sha256) and hashed into the
    run like any bar file. Raises :class:`SpecError` if the spec or data is refused (no run
    folder is made) and :class:`RunFailed` if the run fails (its folder says why)."""
    described = None if strategy is None else _describe(strategy)
    target = _data_dir(data_dir)
    if strategy is not None:
        if getattr(strategy, "_tradeloom_ran", False):
            raise ValueError(
                "strategy: this object already ran a backtest (its state, indicators "
                "included, is that run's); make a new one for each backtest"
            )
    paths = None if data is None else _write_frames(data, target / "frames")
    if strategy is not None:
        strategy._tradeloom_ran = True
    try:
        if isinstance(spec, Mapping):
            spec = dict(spec)
            if described is not None:
                spec["strategy"] = {"name": described[1]}
            text = json.dumps(spec)
            place = os.path.join(os.getcwd(), "<spec dict>")
            run_id, run_dir, status, tables = _run_spec_text(
                text, place, os.fspath(target), paths, described
            )
        else:
            run_id, run_dir, status, tables = _run_spec(
                os.fspath(spec), os.fspath(target), paths, described
            )
    except SpecError:
        # Refused before the strategy saw a bar: the object is still fresh.
        if strategy is not None:
            strategy._tradeloom_ran = False
        raise
    return Result(run_id, run_dir, status, tables)
