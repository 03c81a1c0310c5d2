"""The child side of tradeloom's sandboxed scripts: the ``Strategy`` base class user scripts
subclass, and the runner that speaks the line protocol with the engine.

tradeloom starts this file with ``python3 -s -B -c <this file's text>`` inside the sandbox (no
network, a scratch folder as the only writable place, memory/CPU/open-file limits, no new
processes). It needs nothing but the standard library, so a script runs the same whether or not
the ``tradeloom`` package is installed. The protocol is documented in the book's "Sandboxed
scripts" page; in short, one JSON object per line on stdin (requests) and on the original
stdout (replies), with ``print`` output sent to stderr.

A strategy script::

    from tradeloom.sandbox import Strategy

    class MyStrategy(Strategy):
        def __init__(self, quantity=1):
            self.quantity = quantity

        def on_bar(self, ctx, bar):
            if ctx.position == 0:
                ctx.buy(self.quantity)

A skill script (a workflow ``script`` node) defines ``main(input) -> output`` with JSON values.
"""

import decimal
import json
import os
import pickle
import sys
import traceback
import types

PROTOCOL = 1
"""The protocol version this runner speaks (the ``hello`` message carries it)."""

_SCALE = 1_000_000_000
"""Prices and quantities travel as integers at 10^-9."""


class Bar:
    """One bar: ``ts`` (UTC nanoseconds, the bar's open time), prices and volume as floats
    (``open``, ``high``, ``low``, ``close``, ``volume``) and exactly as integers at 10^-9
    (``open_raw`` ... ``volume_raw``)."""

    __slots__ = ("ts", "open_raw", "high_raw", "low_raw", "close_raw", "volume_raw")

    def __init__(self, ts, open_raw, high_raw, low_raw, close_raw, volume_raw):
        self.ts = ts
        self.open_raw = open_raw
        self.high_raw = high_raw
        self.low_raw = low_raw
        self.close_raw = close_raw
        self.volume_raw = volume_raw

    @property
    def open(self):
        return self.open_raw / _SCALE

    @property
    def high(self):
        return self.high_raw / _SCALE

    @property
    def low(self):
        return self.low_raw / _SCALE

    @property
    def close(self):
        return self.close_raw / _SCALE

    @property
    def volume(self):
        return self.volume_raw / _SCALE

    def __repr__(self):
        return "Bar(ts=%d, open=%s, high=%s, low=%s, close=%s, volume=%s)" % (
            self.ts, self.open, self.high, self.low, self.close, self.volume)


class Fill:
    """A fill of one of the strategy's orders: ``order_id`` (the engine's), ``order`` (the
    ``Order`` handle ``buy``/``sell`` returned, or ``None`` for an engine-initiated order such
    as a kill-switch liquidation), ``side`` (``"buy"``/``"sell"``), ``quantity``/``price``
    (floats and ``*_raw`` integers at 10^-9), ``fee`` (a decimal string) and ``ts``."""

    __slots__ = ("ts", "order_id", "order", "side", "quantity_raw", "price_raw", "fee")

    def __init__(self, ts, order_id, order, side, quantity_raw, price_raw, fee):
        self.ts = ts
        self.order_id = order_id
        self.order = order
        self.side = side
        self.quantity_raw = quantity_raw
        self.price_raw = price_raw
        self.fee = fee

    @property
    def quantity(self):
        return self.quantity_raw / _SCALE

    @property
    def price(self):
        return self.price_raw / _SCALE

    def __repr__(self):
        return "Fill(order_id=%s, side=%s, quantity=%s, price=%s, fee=%s)" % (
            self.order_id, self.side, self.quantity, self.price, self.fee)


class Order:
    """The handle ``ctx.buy``/``ctx.sell``/``ctx.submit`` return: ``ref`` (this script's
    number for it) and ``id`` (the engine's order id, known once the engine has accepted the
    request, i.e. from the next callback on)."""

    __slots__ = ("ref", "id")

    def __init__(self, ref):
        self.ref = ref
        self.id = None

    def __repr__(self):
        return "Order(ref=%d, id=%s)" % (self.ref, self.id)


def _decimal_text(value, what):
    """A quantity or price as the exact decimal text the engine parses."""
    if isinstance(value, bool):
        raise TypeError("%s must be a number, not a bool" % what)
    if isinstance(value, int):
        return str(value)
    if isinstance(value, float):
        if value != value or value in (float("inf"), float("-inf")):
            raise ValueError("%s must be finite, got %r" % (what, value))
        return format(decimal.Decimal(repr(value)), "f")
    if isinstance(value, decimal.Decimal):
        return format(value, "f")
    if isinstance(value, str):
        return value
    raise TypeError("%s must be an int, float, Decimal or str, got %s" % (what, type(value).__name__))


_TIFS = ("gtc", "ioc", "day")


class Context:
    """The strategy's view at one callback and the way to trade.

    Read: ``ts``, ``symbol``, ``price_precision``, ``size_precision``, ``position`` (signed
    net quantity, float) and ``position_raw`` (integer at 10^-9), ``open_orders`` (orders of
    this instrument working when the callback started). Act: ``buy``, ``sell``, ``submit``,
    ``close_position``, ``cancel``, ``cancel_all``. Requests are queued and carried out by the
    engine after the callback returns, in order, as with the built-in Rust strategies: the
    position does not change during a callback.

    Fields the engine does not send yet (a newer engine may add e.g. ``cash`` or ``equity``)
    are simply absent; check with ``getattr(ctx, "cash", None)``.
    """

    def __init__(self, instrument):
        self.symbol = instrument.get("symbol")
        self.price_precision = instrument.get("price_precision")
        self.size_precision = instrument.get("size_precision")
        self.ts = 0
        self.position_raw = 0
        self.open_orders = 0
        self._commands = []
        self._next_ref = 0
        self._orders = {}

    def __reduce__(self):
        # A strategy that keeps the context cannot be snapshotted for batching (see the
        # runner's `_snapshot`), which then falls back to one bar per round trip.
        raise TypeError("the strategy context cannot be pickled")

    @property
    def position(self):
        return self.position_raw / _SCALE

    def _update(self, state):
        self.ts = state.get("ts", self.ts)
        self.position_raw = state.get("position", self.position_raw)
        self.open_orders = state.get("open_orders", self.open_orders)
        for ref, order_id in state.get("assigned", ()):
            order = self._orders.get(ref)
            if order is not None:
                order.id = order_id
        for key, value in state.get("extra", {}).items():
            setattr(self, key, value)

    def submit(self, side, quantity, limit=None, stop=None, tif="gtc", reduce_only=False):
        """Queues an order: market without prices, limit with ``limit``, stop with ``stop``,
        stop-limit with both. ``tif``: gtc, ioc or day. Returns an ``Order``."""
        if side not in ("buy", "sell"):
            raise ValueError("side must be 'buy' or 'sell', got %r" % (side,))
        if tif not in _TIFS:
            raise ValueError("tif must be one of %s, got %r" % (", ".join(_TIFS), tif))
        if limit is None and stop is None:
            kind = "market"
        elif stop is None:
            kind = "limit"
        elif limit is None:
            kind = "stop"
        else:
            kind = "stop_limit"
        self._next_ref += 1
        ref = self._next_ref
        command = {"op": "submit", "ref": ref, "side": side, "type": kind,
                   "quantity": _decimal_text(quantity, "quantity"), "tif": tif}
        if limit is not None:
            command["price"] = _decimal_text(limit, "limit")
        if stop is not None:
            command["trigger_price"] = _decimal_text(stop, "stop")
        if reduce_only:
            command["reduce_only"] = True
        self._commands.append(command)
        order = Order(ref)
        self._orders[ref] = order
        return order

    def buy(self, quantity, limit=None, stop=None, tif="gtc", reduce_only=False):
        """Queues a buy; see ``submit``."""
        return self.submit("buy", quantity, limit, stop, tif, reduce_only)

    def sell(self, quantity, limit=None, stop=None, tif="gtc", reduce_only=False):
        """Queues a sell; see ``submit``."""
        return self.submit("sell", quantity, limit, stop, tif, reduce_only)

    def close_position(self):
        """Queues a market order flattening the position (nothing when flat)."""
        if self.position_raw != 0:
            self._commands.append({"op": "close_position"})

    def cancel(self, order):
        """Cancels a working order: an ``Order`` handle or an engine order id."""
        if isinstance(order, Order):
            self._commands.append({"op": "cancel", "ref": order.ref})
        elif isinstance(order, int) and not isinstance(order, bool):
            self._commands.append({"op": "cancel", "order_id": order})
        else:
            raise TypeError("cancel takes an Order or an order id, got %s" % type(order).__name__)

    def cancel_all(self):
        """Cancels every working order of this instrument."""
        self._commands.append({"op": "cancel_all"})


class Strategy:
    """Base class of script strategies. The engine creates one instance per instrument with
    ``YourClass(**params)`` and calls, in event order: ``on_start(ctx)`` once, ``on_bar(ctx,
    bar)`` for every bar (after working orders were matched against it), ``on_fill(ctx,
    fill)`` after each fill of the strategy's orders, ``on_stop(ctx)`` once at the end."""

    def on_start(self, ctx):
        pass

    def on_bar(self, ctx, bar):
        pass

    def on_fill(self, ctx, fill):
        pass

    def on_stop(self, ctx):
        pass


class ScriptError(Exception):
    """A problem with the script itself (not found, no such class, wrong return value)."""


# ---- the runner ------------------------------------------------------------------------------

_PROCESS_CALLS = ("fork", "forkpty", "posix_spawn", "posix_spawnp", "_execute_child", "system",
                  "popen", "spawnv", "spawnve", "execv", "execve", "_fork_exec")
_NETWORK_FILES = ("socket.py", "connection.py", "client.py", "request.py")


def _classify(exc):
    """Which sandbox rule (if any) an exception most likely hit: the parent names the limit.
    Wrapped errors count too (urllib's URLError around the refused socket, `raise … from`)."""
    if isinstance(exc, MemoryError):
        return "memory"
    if isinstance(exc, ScriptError):
        return "script"
    seen = []
    current = exc
    while current is not None and len(seen) < 8 and current not in seen:
        seen.append(current)
        reason = getattr(current, "reason", None)
        if isinstance(reason, BaseException) and reason not in seen:
            seen.append(reason)
        current = current.__cause__ or current.__context__
    for candidate in seen:
        if isinstance(candidate, MemoryError):
            return "memory"
        if isinstance(candidate, OSError) and candidate.errno in (1, 13, 97):  # EPERM, EACCES, EAFNOSUPPORT
            frames = traceback.extract_tb(exc.__traceback__) + traceback.extract_tb(
                candidate.__traceback__)
            names = [f.name for f in frames]
            files = [os.path.basename(f.filename) for f in frames]
            if any(n in _PROCESS_CALLS for n in names):
                return "process"
            if any(f in _NETWORK_FILES for f in files) or "socket" in str(candidate).lower():
                return "network"
            if candidate.filename is not None:
                return "filesystem"
            # os.fork() and friends called directly show only the user's frame.
            return "filesystem" if candidate.errno == 13 else "process"
    return "exception"


def _error_reply(exc):
    if isinstance(exc, ScriptError):
        text = str(exc)
    else:
        text = "".join(traceback.format_exception_only(type(exc), exc)).strip()
    trace = "".join(traceback.format_exception(type(exc), exc, exc.__traceback__))
    for prefix in {sys.prefix, sys.base_prefix, sys.exec_prefix}:
        trace = trace.replace(prefix, "<python>")
    return {"type": "error", "kind": _classify(exc), "error": text, "traceback": trace}


def _load_module(path, name, display=None):
    """Runs the script as module `name`. Tracebacks show it as `display` (the path as the spec
    wrote it), never as the server's absolute path."""
    try:
        with open(path, "rb") as f:
            source = f.read()
    except FileNotFoundError:
        raise ScriptError("script %s not found" % (display or path)) from None
    module = types.ModuleType(name)
    module.__file__ = display or path
    sys.modules[name] = module
    folder = os.path.dirname(os.path.abspath(path))
    if folder not in sys.path:
        sys.path.insert(0, folder)
    code = compile(source, display or path, "exec")
    exec(code, module.__dict__)
    return module


class _StrategyHost:
    """One strategy instance and its context, driven by protocol messages."""

    def __init__(self, message):
        module = _load_module(message["script"], "tradeloom_user_strategy", message.get("display"))
        name = message["class"]
        cls = getattr(module, name, None)
        if cls is None or not isinstance(cls, type):
            found = sorted(k for k, v in vars(module).items()
                           if isinstance(v, type) and issubclass(v, Strategy) and v is not Strategy)
            raise ScriptError("the script defines no class %s (strategy classes found: %s)"
                              % (name, ", ".join(found) or "none"))
        params = message.get("params") or {}
        self.strategy = cls(**params)
        for method in ("on_bar",):
            if not callable(getattr(self.strategy, method, None)):
                raise ScriptError("class %s has no %s method" % (name, method))
        self.ctx = Context(message.get("instrument", {}))
        self.batching = bool(message.get("batching", True))
        # Whether fills need a round trip: not when the class keeps the base's `on_fill`
        # (the position and the order ids then reach the context with the next message).
        self.wants_fills = getattr(type(self.strategy), "on_fill", Strategy.on_fill) \
            is not Strategy.on_fill
        self.snapshot = None
        self.batch = None
        self.held = []

    def _drain(self):
        commands = self.ctx._commands
        self.ctx._commands = []
        return commands

    def start(self, message):
        self.ctx._update(message)
        getattr(self.strategy, "on_start", Strategy.on_start.__get__(self.strategy))(self.ctx)
        return {"type": "done", "commands": self._drain()}

    def _take_snapshot(self):
        """Pickles the strategy (and the context's order numbering) before a batch so a batch
        interrupted by an engine-initiated event can be rewound; `False` when it cannot be."""
        try:
            self.snapshot = (pickle.dumps(self.strategy, 5), self.ctx._next_ref)
            return True
        except Exception:  # any pickling failure: fall back to one bar at a time
            self.snapshot = None
            self.batching = False
            return False

    def bars(self, message):
        ctx = self.ctx
        ctx._update(message)
        keep = message.get("keep", 0)
        full = self.held[:6 * keep] + message["bars"] if keep else message["bars"]
        flat = full
        if len(flat) > 6 and not (self.batching and self._take_snapshot()):
            flat = flat[:6]
        self.batch = flat if len(flat) > 6 else None
        on_bar = self.strategy.on_bar
        consumed = 0
        it = iter(flat)
        for ts, o, h, l, c, v in zip(it, it, it, it, it, it):
            consumed += 1
            ctx.ts = ts
            on_bar(ctx, Bar(ts, o, h, l, c, v))
            if ctx._commands:
                break
        # The bars sent but not run stay here; the next batch may start with them ("keep").
        self.held = full[6 * consumed:]
        reply = {"type": "done", "consumed": consumed, "commands": self._drain()}
        if not self.batching:
            reply["batching"] = False
        return reply

    def rewind(self, message):
        """Back to the state after the first `keep` bars of the last batch (which produced no
        commands), re-running them from the snapshot taken before the batch."""
        keep = message["keep"]
        if self.snapshot is None or self.batch is None or keep >= len(self.batch) // 6:
            raise ScriptError("protocol: rewind without a batch to rewind")
        data, next_ref = self.snapshot
        self.strategy = pickle.loads(data)
        self.ctx._next_ref = next_ref
        for ref in [r for r in self.ctx._orders if r > next_ref]:
            del self.ctx._orders[ref]
        on_bar = self.strategy.on_bar
        it = iter(self.batch[:6 * keep])
        for ts, o, h, l, c, v in zip(it, it, it, it, it, it):
            self.ctx.ts = ts
            on_bar(self.ctx, Bar(ts, o, h, l, c, v))
            if self.ctx._commands:
                raise ScriptError(
                    "the strategy is not deterministic: re-running bar ts=%d for a rewind "
                    "produced orders it did not produce the first time (keep state on self, "
                    "not in module globals, and use no clocks or unseeded randomness)" % ts)
        self.batch = None
        self.held = []
        return {"type": "done", "commands": []}

    def fill(self, message):
        self.ctx._update(message)
        f = message["fill"]
        ref = f.get("ref")
        order = self.ctx._orders.get(ref) if ref is not None else None
        if order is not None and order.id is None:
            order.id = f["order_id"]
        fill = Fill(message.get("ts", 0), f["order_id"], order, f["side"], f["quantity"],
                    f["price"], f.get("fee"))
        on_fill = getattr(self.strategy, "on_fill", None)
        if on_fill is not None:
            on_fill(self.ctx, fill)
        return {"type": "done", "commands": self._drain()}

    def stop(self, message):
        self.ctx._update(message)
        getattr(self.strategy, "on_stop", Strategy.on_stop.__get__(self.strategy))(self.ctx)
        return {"type": "done", "commands": self._drain()}


class _SkillHost:
    """A skill: a function of one JSON value returning one JSON value."""

    def __init__(self, message):
        module = _load_module(message["script"], "tradeloom_user_skill", message.get("display"))
        name = message.get("function") or "main"
        self.function = getattr(module, name, None)
        if not callable(self.function):
            raise ScriptError("the script defines no function %s" % name)
        self.name = name

    def call(self, message):
        output = self.function(message.get("input"))
        try:
            text = json.dumps(output)
        except (TypeError, ValueError) as e:
            raise ScriptError("%s returned a value that is not JSON: %s" % (self.name, e))
        return {"type": "result", "output": json.loads(text)}


def _install_modules():
    """Makes `import tradeloom` and `from tradeloom.sandbox import Strategy` work inside the
    sandbox (the compiled package is neither needed nor loaded there)."""
    this = sys.modules[__name__]
    if __name__ != "tradeloom.sandbox":
        sys.modules["tradeloom.sandbox"] = this
    package = sys.modules.get("tradeloom")
    if package is None:
        package = types.ModuleType("tradeloom")
        package.__path__ = []
        sys.modules["tradeloom"] = package
    for name in ("Strategy", "Bar", "Fill", "Order", "Context"):
        if not hasattr(package, name):
            setattr(package, name, getattr(this, name))
    package.sandbox = this


def serve(stdin=None, stdout=None):
    """Runs the protocol loop until `exit` or end of input. `print` goes to stderr."""
    if stdout is None:
        stdout = os.fdopen(os.dup(1), "w", encoding="utf-8", buffering=1 << 16)
        os.dup2(2, 1)
        sys.stdout = sys.stderr
    if stdin is None:
        stdin = sys.stdin.buffer
    _install_modules()
    dumps = json.dumps
    loads = json.loads

    def send(reply):
        stdout.write(dumps(reply, separators=(",", ":")))
        stdout.write("\n")
        stdout.flush()

    send({"type": "hello", "protocol": PROTOCOL, "runner": "tradeloom.sandbox",
          "python": "%d.%d.%d" % sys.version_info[:3]})
    host = None
    handlers = {}
    for line in stdin:
        try:
            message = loads(line)
            kind = message["type"]
            if kind == "exit":
                break
            if kind == "init":
                if message.get("kind") == "skill":
                    host = _SkillHost(message)
                    handlers = {"call": host.call}
                else:
                    host = _StrategyHost(message)
                    handlers = {"start": host.start, "bars": host.bars, "fill": host.fill,
                                "stop": host.stop, "rewind": host.rewind}
                send({"type": "ready", "batching": getattr(host, "batching", False),
                      "fills": getattr(host, "wants_fills", False)})
                continue
            handler = handlers.get(kind)
            if handler is None:
                raise ScriptError("protocol: unexpected message type %r" % (kind,))
            send(handler(message))
        except KeyboardInterrupt:
            raise
        except BaseException as e:  # every failure goes back to the engine, then the runner ends
            if not isinstance(e, Exception):  # SystemExit: the script called sys.exit()
                e = ScriptError("the script called sys.exit(%s)" % (e.args[0] if e.args else ""))
            send(_error_reply(e))
            return 1
    return 0


if __name__ == "__main__":
    sys.exit(serve())
