"""tradeloom bench run: NautilusTrader on the bench's bar file, as a whole process.

Usage: python nautilus_run.py BARS.csv FAST SLOW CASH

The work of `tradeloom run` on the bench spec: SMA(FAST) and SMA(SLOW) of closes; on a cross up
close any short and buy 1, on a cross down close any long and sell 1; market orders on a margin
account (netting), no fees. NautilusTrader's backtest fills a market order sent on a bar against
that bar (its `bar_close`, where the bench spec fills at the next open: same orders, prices one
bar apart). Whole process: import, load the CSV, build the engine, run. Prints one JSON line:
closed round trips and final equity (balance + unrealised PnL at the last close).
"""

import importlib.metadata
import json
import logging
import sys
from decimal import Decimal

import pandas as pd
from nautilus_trader.backtest.engine import BacktestEngine
from nautilus_trader.config import BacktestEngineConfig, LoggingConfig, StrategyConfig
from nautilus_trader.indicators import SimpleMovingAverage
from nautilus_trader.model.currencies import USD
from nautilus_trader.model.data import Bar, BarType
from nautilus_trader.model.enums import AccountType, OmsType, OrderSide
from nautilus_trader.model.identifiers import InstrumentId, Symbol, Venue
from nautilus_trader.model.instruments import Equity
from nautilus_trader.model.objects import Money, Price, Quantity
from nautilus_trader.persistence.wranglers import BarDataWrangler
from nautilus_trader.trading.strategy import Strategy

path, fast, slow, cash = sys.argv[1], int(sys.argv[2]), int(sys.argv[3]), float(sys.argv[4])
logging.disable(logging.CRITICAL)

venue = Venue("SIM")
instrument = Equity(
    instrument_id=InstrumentId(Symbol("SYN"), venue),
    raw_symbol=Symbol("SYN"),
    currency=USD,
    price_precision=2,
    price_increment=Price.from_str("0.01"),
    lot_size=Quantity.from_int(1),
    ts_event=0,
    ts_init=0,
)
bar_type = BarType.from_str("SYN.SIM-1-MINUTE-LAST-EXTERNAL")


class SmaCrossConfig(StrategyConfig, frozen=True):
    fast: int
    slow: int


class SmaCross(Strategy):
    def __init__(self, config: SmaCrossConfig):
        super().__init__(config)
        self.fast = SimpleMovingAverage(config.fast)
        self.slow = SimpleMovingAverage(config.slow)
        self.previous = None
        self.closed = 0

    def on_start(self):
        self.register_indicator_for_bars(bar_type, self.fast)
        self.register_indicator_for_bars(bar_type, self.slow)
        self.subscribe_bars(bar_type)

    def on_bar(self, bar: Bar):
        if not (self.fast.initialized and self.slow.initialized):
            return
        now = (self.fast.value, self.slow.value)
        before, self.previous = self.previous, now
        if before is None:
            return
        if before[0] < before[1] and now[0] > now[1]:
            self.enter(OrderSide.BUY)
        elif before[0] > before[1] and now[0] < now[1]:
            self.enter(OrderSide.SELL)

    def enter(self, side):
        self.close_all_positions(instrument.id)
        order = self.order_factory.market(instrument.id, side, Quantity.from_int(1))
        self.submit_order(order)

    def on_position_closed(self, event):
        self.closed += 1


frame = pd.read_csv(path, index_col="timestamp", parse_dates=["timestamp"])
bars = BarDataWrangler(bar_type, instrument).process(frame)

engine = BacktestEngine(
    BacktestEngineConfig(logging=LoggingConfig(bypass_logging=True, log_level="ERROR"))
)
engine.add_venue(
    venue=venue,
    oms_type=OmsType.NETTING,
    account_type=AccountType.MARGIN,
    starting_balances=[Money(cash, USD)],
    base_currency=USD,
    default_leverage=Decimal(1),
)
engine.add_instrument(instrument)
engine.add_data(bars)
strategy = SmaCross(SmaCrossConfig(fast=fast, slow=slow))
engine.add_strategy(strategy)
engine.run()

account = engine.portfolio.account(venue)
balance = account.balance_total(USD).as_double()
unrealized = engine.portfolio.unrealized_pnl(instrument.id)
final_equity = balance + (unrealized.as_double() if unrealized is not None else 0.0)
print(
    json.dumps(
        {
            "engine": "nautilus_trader",
            "version": importlib.metadata.version("nautilus_trader"),
            "bars": len(bars),
            "trades": strategy.closed,
            "final_equity": final_equity,
        }
    )
)
engine.dispose()
