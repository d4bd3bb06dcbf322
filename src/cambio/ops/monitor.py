"""Monitors: cheap checks after every batch, and breakers that stop a market in trouble.

After each batch (a sequencer hook, on the loop) only what the batch touched is looked
at, with O(1) questions to the engine:

* **crossed book**: in each market the batch touched, the best bid must be below the
  best ask (the engine should never allow otherwise: this catches engine bugs);
* **negative balance**: no account the batch touched may hold less than nothing;
* **price band**: a trade more than `band_pct` percent away from its market's reference
  price (the first trade of the current `window_s` window, by the commands' own time) is
  a market moving too fast, or a fat finger.

A breach moves the affected markets to cancel_only (or, with policy `halt`, halts the
exchange), as journaled commands whose reason is the one line an operator can act on,
raises an alert (kept for the admin API and counted for metrics) and is logged. A market
trips once: the operator reopens it (`cambio admin mode set online --pair ...`), which
re-arms it.
"""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass, field
from typing import Any

from cambio.model.commands import CANCEL_ONLY, Command, Halt, SetMarketMode
from cambio.model.decimals import format_units
from cambio.model.events import ACCOUNT_FIELDS, Event, MarketModeChanged, Trade
from cambio.runtime.service import ExchangeService

log = logging.getLogger("cambio.monitor")
POLICIES = ("cancel_only", "halt")
MAX_ALERTS = 1000  # kept in memory for the admin API; older ones are in the log


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
    kind: str  # crossed_book, negative_balance, price_band
    pairs: list[str]
    text: str


@dataclass
class Monitor:
    service: ExchangeService
    band_pct: float = 10.0
    window_s: float = 60.0
    policy: str = "cancel_only"
    alerts: list[Alert] = field(default_factory=list)
    trips: dict[str, int] = field(default_factory=dict)  # breaches by kind, since start
    _reference: dict[int, tuple[int, int]] = field(default_factory=dict)  # pair: (ts, price)
    _tripped: set[int] = field(default_factory=set)  # pairs moved, until reopened

    def __post_init__(self) -> None:
        if self.policy not in POLICIES:
            raise ValueError(f"policy must be one of {', '.join(POLICIES)}")

    def after_batch(self, cmds: list[Command], results: list[list[Event]]) -> None:
        pairs: set[int] = set()
        accounts: set[int] = set()
        breaches: list[tuple[str, list[int], str]] = []
        for cmd, events in zip(cmds, results, strict=True):
            for ev in events:
                etype = type(ev)
                has_pair, account_fields = _shape.get(etype) or _learn(etype)
                if has_pair:
                    pairs.add(ev.pair)  # type: ignore[attr-defined]
                for f in account_fields:
                    accounts.add(getattr(ev, f))
                if isinstance(ev, Trade):
                    found = self._band(ev, cmd.ts)
                    if found:
                        breaches.append(("price_band", [ev.pair], found))
                elif isinstance(ev, MarketModeChanged) and ev.mode != CANCEL_ONLY:
                    self._tripped.discard(ev.pair)  # reopened by the operator: re-armed
        host, config = self.service.host, self.service.config
        for pair in sorted(pairs):
            spec = config.pairs[pair]
            bid, ask = host.query("touch", spec.id)
            if bid and ask and bid >= ask:
                text = (f"{spec.id}: book crossed, best bid {format_units(bid, spec.pair_decimals)}"
                        f" >= best ask {format_units(ask, spec.pair_decimals)}")  # fmt: skip
                breaches.append(("crossed_book", [pair], text))
        for account in sorted(accounts):
            for asset, values in host.query("balances", account).items():
                if min(values) < 0:
                    units = config.asset(asset).units
                    shown = ", ".join(format_units(v, units) for v in values)
                    text = f"account {account}: negative {asset} balance ({shown})"
                    breaches.append(("negative_balance", sorted(pairs), text))
        for kind, where, text in breaches:
            self._breach(kind, where, text, cmds[-1].seq)

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

    def _breach(self, kind: str, pairs: list[int], text: str, seq: int) -> None:
        config, sequencer = self.service.config, self.service.sequencer
        assert sequencer is not None
        self.trips[kind] = self.trips.get(kind, 0) + 1
        names = [config.pairs[p].id for p in pairs]
        self.alerts.append(Alert(time.time(), seq, kind, names, text))
        del self.alerts[:-MAX_ALERTS]
        log.error("monitor: %s", text)
        reason = f"monitor: {text}"
        if self.policy == "halt":
            sequencer.submit_nowait(Halt(reason=reason))
            return
        for pair in pairs:
            if pair not in self._tripped:
                self._tripped.add(pair)
                sequencer.submit_nowait(
                    SetMarketMode(pair=config.pairs[pair].id, mode=CANCEL_ONLY, reason=reason)
                )

    def report(self) -> dict[str, Any]:
        """For the admin API: settings, trips by kind, the newest alerts first."""
        return {
            "band_pct": self.band_pct,
            "window_s": self.window_s,
            "policy": self.policy,
            "trips": dict(self.trips),
            "alerts": [a.__dict__ for a in reversed(self.alerts[-100:])],
        }
