"""Type hints of the native module (crates/py)."""

from decimal import Decimal
from typing import Any, Dict, List, Optional, Tuple, Union

__version__: str

Number = Union[int, float, Decimal, str]

class SpecError(ValueError):
    """The spec or its data was refused before the run started: nothing was written."""

class RunFailed(RuntimeError):
    """The run started and failed; ``args`` are (message, run_id, run_dir)."""

class ArrowTable:
    """One of a run's CSV tables (orders, fills, trades), built in Rust during the run;
    ``pyarrow.table(t)`` imports it without a copy through the Arrow C stream interface."""

    num_rows: int
    def __arrow_c_stream__(self, requested_schema: Optional[object] = None) -> object: ...

def run_spec(
    spec_path: str,
    data_dir: str,
    data: Optional[Dict[str, str]] = None,
    strategy: Optional[Tuple[Any, str, str, Tuple[str, ...]]] = None,
) -> Tuple[str, str, str, Dict[str, ArrowTable]]: ...
def run_spec_text(
    text: str,
    place: str,
    data_dir: str,
    data: Optional[Dict[str, str]] = None,
    strategy: Optional[Tuple[Any, str, str, Tuple[str, ...]]] = None,
) -> Tuple[str, str, str, Dict[str, ArrowTable]]: ...

class Bar:
    """One bar: prices as floats and exactly as integers at 10^-9 (``*_raw``)."""

    symbol: str
    ts: int
    open: float
    high: float
    low: float
    close: float
    volume: float
    open_raw: int
    high_raw: int
    low_raw: int
    close_raw: int
    volume_raw: int

class Fill:
    """A fill of one of the strategy's orders."""

    id: int
    order_id: int
    symbol: str
    side: str
    quantity: float
    price: float
    fee: str
    ts: int

class Order:
    """A working order."""

    id: int
    symbol: str
    side: str
    type: str
    quantity: float
    filled: float
    limit: Optional[float]
    stop: Optional[float]
    tif: str
    reduce_only: bool

class Context:
    """The run at one callback, and the way to trade; usable only during that callback."""

    ts: int
    symbol: str
    symbols: List[str]
    cash: float
    cash_exact: str
    equity: float
    equity_exact: str
    def position(self, symbol: Optional[str] = None) -> float: ...
    def last_price(self, symbol: Optional[str] = None) -> Optional[float]: ...
    def open_orders(self, symbol: Optional[str] = None) -> List[Order]: ...
    def buy(
        self,
        quantity: Number,
        limit: Optional[Number] = None,
        stop: Optional[Number] = None,
        tif: str = "gtc",
        reduce_only: bool = False,
        symbol: Optional[str] = None,
    ) -> int: ...
    def sell(
        self,
        quantity: Number,
        limit: Optional[Number] = None,
        stop: Optional[Number] = None,
        tif: str = "gtc",
        reduce_only: bool = False,
        symbol: Optional[str] = None,
    ) -> int: ...
    def trailing_stop(
        self,
        side: str,
        quantity: Number,
        offset: Optional[Number] = None,
        bps: Optional[Number] = None,
        tif: str = "gtc",
        reduce_only: bool = False,
        symbol: Optional[str] = None,
    ) -> int: ...
    def bracket(
        self,
        side: str,
        quantity: Number,
        limit: Optional[Number] = None,
        stop: Optional[Number] = None,
        take_profit: Optional[Number] = None,
        stop_loss: Optional[Number] = None,
        trail: Optional[Number] = None,
        trail_bps: Optional[Number] = None,
        tif: str = "gtc",
        symbol: Optional[str] = None,
    ) -> Tuple[int, Optional[int], Optional[int]]: ...
    def close_position(self, symbol: Optional[str] = None) -> Optional[int]: ...
    def cancel(self, order_id: int) -> None: ...
    def cancel_all(self, symbol: Optional[str] = None) -> None: ...

class SMA:
    """Simple moving average (exact integer sums)."""

    def __init__(self, period: int) -> None: ...
    def update(self, value: Number) -> None: ...
    ready: bool
    value: Optional[float]
    period: int

class EMA:
    """Exponential moving average, alpha = 2 / (period + 1)."""

    def __init__(self, period: int) -> None: ...
    def update(self, value: Number) -> None: ...
    ready: bool
    value: Optional[float]
    period: int

class RollingStd:
    """Rolling sample standard deviation (and mean) of the last ``period`` values."""

    def __init__(self, period: int) -> None: ...
    def update(self, value: Number) -> None: ...
    ready: bool
    value: Optional[float]
    mean: Optional[float]
    period: int

class Crossover:
    """``update(fast, slow)`` returns ``"up"``, ``"down"`` or ``None``."""

    def __init__(self) -> None: ...
    def update(
        self, fast: Union[SMA, EMA, RollingStd, float], slow: Union[SMA, EMA, RollingStd, float]
    ) -> Optional[str]: ...
