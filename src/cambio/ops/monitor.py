"""Monitors: cheap checks after every batch, and breakers that stop a market in trouble.

After each batch (a sequencer hook, on the loop) only what the batch touched is looked
at, with O(1) questions to the engine per market and per account touched:

* **crossed book**: in each market the batch touched, the best bid must be below the
  best ask (the engine should never allow otherwise: this catches engine bugs);
* **negative balance**: no account the batch touched may hold less than nothing;
* **conservation**: per asset, the holdings (available + held) of the accounts the batch
  touched must have moved, together, by exactly what the batch's events moved across the
  exchange's boundary: + `Deposited`, - `WithdrawalCompleted` (its fee stays, on the fee
  account). The fee account is always among the touched (trades and withdrawals credit it
  without naming it). The monitor keeps every account's holdings from one full look at
  start (`start()`, which also checks that they add up to the engine's supply per asset)
  and updates the touched accounts' after each batch. The start check compares with the
  engine's own supply figure, which a restore derives from the snapshot's balances: it
  covers what was replayed since; the full audit against the journal's deposits and
  withdrawals is `cambio verify`. A change to an account no event names escapes the
  per-batch check (`cambio verify` finds it). After an engine switch (an upgrade's
  cutover or rollback) the full look is taken again, from the new engine;
* **price band**: a trade more than `band_pct` percent away from its market's reference
  price (the first trade of the current `window_s` window, by the commands' own time) is
  a market moving too fast, or a fat finger;
* **volatility**: the range (high - low, in percent of the low) of a market's trades
  within the last `vol_window_s` seconds (by the commands' own time, never the wall
  clock) more than `vol_pct` percent (0: off) is a market moving too far, even in steps
  each inside the band. A rolling window of monotonic deques: amortised O(1) per trade.

A breach is raised as an alert (kept for the admin API and the heartbeat, counted for
metrics), logged, and acted on by journaled commands whose reason is the one line an
operator can act on:

* crossed book, negative balance, price band, volatility: the affected markets move to
  cancel_only, or, with policy `halt`, the exchange halts. A market trips once: the
  operator reopens it (`cambio admin mode set online --pair ...`), which re-arms it and
  starts its band and volatility windows afresh from the next trade (the operator has
  accepted the new price level);
* conservation: the exchange halts, whatever the policy: funds that do not add up concern
  every market trading the asset and every withdrawal of it, and a halt also stops
  withdrawals (cancel_only would let funds leave). It trips once, until the exchange is
  resumed (a global mode other than maintenance).

Engine faults (crossed book, negative balance, conservation: bugs, where the price
breakers are market events) are also told to `listeners`; the server connects the
upgrade manager, which rolls back a cutover under verification (cambio.upgrade.manager).

**Lag** is a warning, no mode change: the engine lag (durable, not applied), the journal
lag (accepted, not durable) or the read-model lag (applied, not projected) above
`lag_commands` for longer than `lag_s` seconds (wall clock: this is about the process
keeping up) raises one `lag` alert per episode; an episode ends when the lag is back to
the threshold. Checked after every batch and every second by `watch()`, since a stuck
disk or engine makes no batches.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from cambio.model.commands import CANCEL_ONLY, MAINTENANCE, Command, Halt, SetMarketMode
from cambio.model.decimals import format_units
from cambio.model.events import (
    ACCOUNT_FIELDS,
    Deposited,
    Event,
    GlobalModeChanged,
    MarketModeChanged,
    Trade,
    WithdrawalCompleted,
)
from cambio.model.ledger import FEE_ACCOUNT
from cambio.runtime.host import EngineHost
from cambio.runtime.host_protocol import ProtocolError
from cambio.runtime.service import ExchangeService

log = logging.getLogger("cambio.monitor")
POLICIES = ("cancel_only", "halt")
MAX_ALERTS = 1000  # kept in memory for the admin API; older ones are in the log
ENGINE_FAULTS = ("crossed_book", "negative_balance", "conservation")
KINDS = (*ENGINE_FAULTS, "price_band", "volatility", "lag")  # every alert kind, for metrics
LAGS = ("journal", "engine", "readmodels")


# per event type: whether it names a market (an int `pair`) and which fields name accounts;
# learnt once, so the hot loop does no attribute probing
_shape: dict[type[Event], tuple[bool, tuple[str, ...]]] = {}


def _learn(kind: type[Event]) -> tuple[bool, tuple[str, ...]]:
    fields = kind.__struct_fields__
    hints = kind.__annotations__
    shape = (
        "pair" in fields and hints.get("pair") in ("int", int),
        tuple(f for f in ACCOUNT_FIELDS if f in fields and hints.get(f) in ("int", int)),
    )
    _shape[kind] = shape
    return shape


@dataclass
class Alert:
    at: float  # wall time
    seq: int  # the last command of the batch that showed it
    kind: str  # one of KINDS
    pairs: list[str]
    text: str

    @property
    def engine_fault(self) -> bool:
        """A breach only an engine bug makes (not a market event, not a slow process)."""
        return self.kind in ENGINE_FAULTS


Listener = Callable[[Alert], None]


@dataclass
class _Range:
    """A market's trades within the volatility window, as two monotonic deques of
    (ts, price): the front of `highs` is the window's highest, of `lows` its lowest."""

    highs: deque[tuple[int, int]] = field(default_factory=deque)
    lows: deque[tuple[int, int]] = field(default_factory=deque)


@dataclass
class Monitor:
    service: ExchangeService
    band_pct: float = 10.0
    window_s: float = 60.0
    policy: str = "cancel_only"
    vol_pct: float = 20.0  # 0: no volatility breaker
    vol_window_s: float = 300.0
    lag_commands: int = 10_000  # a lag above this ...
    lag_s: float = 5.0  # ... for longer than this raises a `lag` alert
    clock: Callable[[], float] = time.monotonic  # for the lag's duration only
    alerts: list[Alert] = field(default_factory=list)
    trips: dict[str, int] = field(default_factory=dict)  # alerts by kind, since start
    listeners: list[Listener] = field(default_factory=list)  # told of every alert
    _reference: dict[int, tuple[int, int]] = field(default_factory=dict)  # pair: (ts, price)
    _ranges: dict[int, _Range] = field(default_factory=dict)  # pair: its volatility window
    _tripped: set[int] = field(default_factory=set)  # pairs moved, until reopened
    # conservation: account -> asset id -> holdings, None until the full look (or when the
    # engine cannot answer it); the engine host it was taken from
    _holdings: dict[int, dict[str, int]] | None = None
    _host: EngineHost | None = None
    _halted: bool = False  # a conservation breach halted the exchange, until resumed
    _lag_since: dict[str, float] = field(default_factory=dict)  # above threshold since
    _lag_alerted: set[str] = field(default_factory=set)  # alerted in this episode

    def __post_init__(self) -> None:
        if self.policy not in POLICIES:
            raise ValueError(f"policy must be one of {', '.join(POLICIES)}")

    # ------------------------------------------------------------------ conservation
    def start(self) -> None:
        """The full conservation look: every account's holdings per asset against the
        engine's supply; keeps the holdings for the per-batch check. At start (the server
        calls it after recovery) and after an engine switch. O(accounts)."""
        host = self._host = self.service.host
        try:
            answer = host.query("totals")
        except (ValueError, ProtocolError) as exc:  # an engine build without the query
            log.warning("monitor: conservation is not checked (the engine cannot say its "
                        "totals: %s)", exc)  # fmt: skip
            self._holdings = None
            return
        holdings = {int(account): dict(assets) for account, assets in answer["accounts"]}
        found: dict[str, int] = {}
        for assets in holdings.values():
            for asset, units in assets.items():
                found[asset] = found.get(asset, 0) + units
        self._holdings = holdings
        assert self.service.sequencer is not None
        seq = self.service.sequencer.applied_seq
        for asset, supply in answer["supply"].items():
            if found.get(asset, 0) != supply:
                text = self._conservation_text(asset, supply, found.get(asset, 0), True)
                self._breach("conservation", [], text, seq)

    def _conservation_text(self, asset: str, expected: int, found: int, whole: bool) -> str:
        units = self.service.config.asset(asset).units
        what, where = (("the supply, deposits - withdrawals", "held by all accounts") if whole
                       else ("the batch's deposits - withdrawals", "the change in the "
                             "holdings of the accounts it touched"))  # fmt: skip
        return (f"{asset} not conserved: expected {format_units(expected, units)} ({what}), "
                f"found {format_units(found, units)} ({where})")  # fmt: skip

    def _conserve(
        self, answers: dict[int, dict[str, list[int]]], supply: dict[int, int], seq: int
    ) -> None:
        """The per-batch check: the touched accounts' change in holdings per asset against
        the batch's deposits - withdrawals (`supply`, by asset index)."""
        holdings = self._holdings
        assert holdings is not None
        moved: dict[str, int] = {}
        for account, balances in answers.items():
            now = {}
            for asset, values in balances.items():
                units = sum(values)
                if units:
                    now[asset] = units
            before = holdings.get(account, {})
            if now == before:  # the common case: holds moved, holdings did not
                continue
            for asset in now.keys() | before.keys():
                moved[asset] = moved.get(asset, 0) + now.get(asset, 0) - before.get(asset, 0)
            if now:
                holdings[account] = now
            else:
                del holdings[account]
        assets = self.service.config.assets
        expected = {assets[index].id: units for index, units in supply.items() if units}
        for asset in sorted(moved.keys() | expected.keys()):
            if moved.get(asset, 0) != expected.get(asset, 0):
                text = self._conservation_text(asset, expected.get(asset, 0),
                                               moved.get(asset, 0), False)  # fmt: skip
                self._breach("conservation", [], text, seq)

    # ------------------------------------------------------------------ after a batch
    def after_batch(self, cmds: list[Command], results: list[list[Event]]) -> None:
        host, config = self.service.host, self.service.config
        if host is not self._host:  # first batch, or the engine was switched: a full look
            self.start()
            checked = False  # this batch is in the full look already
        else:
            checked = self._holdings is not None
        pairs: set[int] = set()
        accounts: set[int] = set()
        supply: dict[int, int] = {}  # asset index: deposits - withdrawals in the batch
        breaches: dict[tuple[str, int], str] = {}  # market breakers: the first per market
        for cmd, events in zip(cmds, results, strict=True):
            for ev in events:
                etype = type(ev)
                has_pair, account_fields = _shape.get(etype) or _learn(etype)
                if has_pair:
                    pairs.add(ev.pair)  # type: ignore[attr-defined]
                for f in account_fields:
                    accounts.add(getattr(ev, f))
                if isinstance(ev, Trade):
                    self._market_breakers(ev, cmd.ts, breaches)
                elif isinstance(ev, Deposited):
                    supply[ev.asset] = supply.get(ev.asset, 0) + ev.amount
                elif isinstance(ev, WithdrawalCompleted):
                    supply[ev.asset] = supply.get(ev.asset, 0) - ev.amount
                elif isinstance(ev, MarketModeChanged) and ev.mode != CANCEL_ONLY:
                    # reopened by the operator: re-armed, with fresh windows
                    self._tripped.discard(ev.pair)
                    self._reference.pop(ev.pair, None)
                    self._ranges.pop(ev.pair, None)
                elif isinstance(ev, GlobalModeChanged) and ev.mode != MAINTENANCE:
                    self._halted = False  # resumed: conservation may halt again
        if accounts:
            accounts.add(FEE_ACCOUNT)
        seq = cmds[-1].seq
        for (kind, pair), text in breaches.items():
            self._breach(kind, [pair], text, seq)
        for pair in sorted(pairs):
            spec = config.pairs[pair]
            bid, ask = host.query("touch", spec.id)
            if bid and ask and bid >= ask:
                text = (f"{spec.id}: book crossed, best bid {format_units(bid, spec.pair_decimals)}"
                        f" >= best ask {format_units(ask, spec.pair_decimals)}")  # fmt: skip
                self._breach("crossed_book", [pair], text, seq)
        answers: dict[int, dict[str, list[int]]] = {}
        for account in sorted(accounts):
            answers[account] = balances = host.query("balances", account)
            for asset, values in balances.items():
                if min(values) < 0:
                    units = config.asset(asset).units
                    shown = ", ".join(format_units(v, units) for v in values)
                    text = f"account {account}: negative {asset} balance ({shown})"
                    self._breach("negative_balance", sorted(pairs), text, seq)
        if checked:
            self._conserve(answers, supply, seq)
        self.check_lag()

    def _market_breakers(self, t: Trade, ts: int, breaches: dict[tuple[str, int], str]) -> None:
        """The price band and the volatility breaker on one trade; a market's first
        breach of each kind in a batch is the one raised (a sweep makes many trades)."""
        found = self._band(t, ts)
        if found:
            breaches.setdefault(("price_band", t.pair), found)
        found = self._volatility(t, ts)
        if found:
            breaches.setdefault(("volatility", t.pair), found)

    def _band(self, t: Trade, ts: int) -> str:
        """The price-band breach a trade makes, if any ("" if none)."""
        ref = self._reference.get(t.pair)
        if ref is None or ts - ref[0] >= self.window_s * 1e9:
            self._reference[t.pair] = (ts, t.price)
            return ""
        moved = abs(t.price - ref[1]) * 100 / ref[1]
        if moved <= self.band_pct:
            return ""
        spec = self.service.config.pairs[t.pair]
        return (f"{spec.id}: trade at {format_units(t.price, spec.pair_decimals)} is "
                f"{moved:.1f}% from {format_units(ref[1], spec.pair_decimals)} within "
                f"{self.window_s:.0f} s (band {self.band_pct:g}%)")  # fmt: skip

    def _volatility(self, t: Trade, ts: int) -> str:
        """The volatility breach a trade makes, if any ("" if none)."""
        if self.vol_pct <= 0:
            return ""
        r = self._ranges.get(t.pair)
        if r is None:
            r = self._ranges[t.pair] = _Range()
        highs, lows, price = r.highs, r.lows, t.price
        start = ts - int(self.vol_window_s * 1e9)  # the window is (start, ts]
        while highs and highs[0][0] <= start:
            highs.popleft()
        while lows and lows[0][0] <= start:
            lows.popleft()
        while highs and highs[-1][1] <= price:
            highs.pop()
        highs.append((ts, price))
        while lows and lows[-1][1] >= price:
            lows.pop()
        lows.append((ts, price))
        high, low = highs[0][1], lows[0][1]
        ranged = (high - low) * 100 / low if low > 0 else 0.0
        if ranged <= self.vol_pct:
            return ""
        spec = self.service.config.pairs[t.pair]
        return (f"{spec.id}: trades ranged from {format_units(low, spec.pair_decimals)} to "
                f"{format_units(high, spec.pair_decimals)} ({ranged:.1f}%) within "
                f"{self.vol_window_s:.0f} s (limit {self.vol_pct:g}%)")  # fmt: skip

    # ------------------------------------------------------------------ lag
    def check_lag(self) -> None:
        """Raise one `lag` alert per episode of a lag above `lag_commands` for longer than
        `lag_s` seconds. A few reads: after every batch and every second."""
        now = self.clock()
        for name, value in self.service.lags().items():
            if value <= self.lag_commands:
                if self._lag_since.pop(name, None) is not None and name in self._lag_alerted:
                    self._lag_alerted.discard(name)
                    log.warning("monitor: %s lag back to %d commands", name, value)
                continue
            since = self._lag_since.setdefault(name, now)
            if name not in self._lag_alerted and now - since > self.lag_s:
                self._lag_alerted.add(name)
                assert self.service.sequencer is not None
                text = (f"{name} lag {value:,} commands for {now - since:.0f} s (alert above "
                        f"{self.lag_commands:,} for {self.lag_s:g} s)")  # fmt: skip
                self._alert("lag", [], text, self.service.sequencer.applied_seq)

    async def watch(self, every_s: float = 1.0) -> None:
        """Check the lag every `every_s` seconds until cancelled: a stuck disk or engine
        makes no batches to check after."""
        while True:
            await asyncio.sleep(every_s)
            try:
                self.check_lag()
            except Exception:  # e.g. while the service stops: the next second tries again
                log.exception("monitor: the lag check failed")

    # ------------------------------------------------------------------ acting
    def _alert(self, kind: str, pairs: list[int], text: str, seq: int) -> Alert:
        config = self.service.config
        self.trips[kind] = self.trips.get(kind, 0) + 1
        alert = Alert(time.time(), seq, kind, [config.pairs[p].id for p in pairs], text)
        self.alerts.append(alert)
        del self.alerts[:-MAX_ALERTS]
        (log.warning if kind == "lag" else log.error)("monitor: %s", text)
        for listener in self.listeners:
            try:
                listener(alert)
            except Exception:  # a listener's failure must not stop the sequencer
                log.exception("monitor: a listener failed on %s", kind)
        return alert

    def _breach(self, kind: str, pairs: list[int], text: str, seq: int) -> None:
        sequencer = self.service.sequencer
        assert sequencer is not None
        self._alert(kind, pairs, text, seq)
        reason = f"monitor: {text}"
        if kind == "conservation":
            if not self._halted:
                self._halted = True
                sequencer.submit_nowait(Halt(reason=reason))
            return
        if self.policy == "halt":
            sequencer.submit_nowait(Halt(reason=reason))
            return
        config = self.service.config
        for pair in pairs:
            if pair not in self._tripped:
                self._tripped.add(pair)
                sequencer.submit_nowait(
                    SetMarketMode(pair=config.pairs[pair].id, mode=CANCEL_ONLY, reason=reason)
                )

    def report(self) -> dict[str, Any]:
        """For the admin API: settings, alerts by kind, the newest alerts first."""
        return {
            "band_pct": self.band_pct,
            "window_s": self.window_s,
            "vol_pct": self.vol_pct,
            "vol_window_s": self.vol_window_s,
            "lag_commands": self.lag_commands,
            "lag_s": self.lag_s,
            "policy": self.policy,
            "conservation": self._holdings is not None,
            "trips": dict(self.trips),
            "alerts": [a.__dict__ for a in reversed(self.alerts[-100:])],
        }
