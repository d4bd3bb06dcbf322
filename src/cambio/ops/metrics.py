"""Prometheus metrics of a running exchange, served on the admin port (GET /metrics).

Counted as things happen (cheap, once per batch or per command): commands sequenced by
type, group-commit sizes, acknowledgement latency of every command that was waited for.
Read when scraped (never on the hot path): journal, engine and read-model lag, journal
position, open orders and book depth per market, WebSocket clients, monitor alerts by
kind, the engine upgrade's phase, shadow lag and divergences. Names follow Prometheus
conventions (`cambio_` prefix, `_total` counters, base units);
docs/grafana-dashboard.json charts them.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import Any

from prometheus_client import CollectorRegistry, Counter, Histogram, generate_latest
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily
from prometheus_client.registry import Collector

from cambio.model.commands import Command
from cambio.model.events import Event
from cambio.ops.monitor import KINDS
from cambio.runtime.service import ExchangeService

CONTENT_TYPE = "text/plain; version=0.0.4; charset=utf-8"
BATCH_BUCKETS = (1, 2, 4, 8, 16, 32, 64, 128, 256, 512, 1024, 2048, 4096)
LATENCY_BUCKETS = (0.0005, 0.001, 0.002, 0.005, 0.01, 0.02, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5)
DEPTH_LEVELS = 1000  # levels a side counted for book depth and open orders


class Metrics:
    def __init__(
        self,
        service: ExchangeService,
        ws_clients: Callable[[], int] = lambda: 0,
        upgrade: Callable[[], dict[str, Any]] | None = None,
        trips: Callable[[], dict[str, int]] = dict,
    ) -> None:
        self.registry = CollectorRegistry()
        self.commands = Counter("cambio_commands", "Commands sequenced and applied, by type.",
                                ["type"], registry=self.registry)  # fmt: skip
        self.batches = Histogram("cambio_batch_commands", "Commands per group commit.",
                                 buckets=BATCH_BUCKETS, registry=self.registry)  # fmt: skip
        self.ack = Histogram(
            "cambio_ack_latency_seconds",
            "From a command's submission to its answer (durable and applied).",
            buckets=LATENCY_BUCKETS,
            registry=self.registry,
        )
        self.registry.register(_State(service, ws_clients, upgrade, trips))
        self._by_type: dict[type[Command], Any] = {}

    def after_batch(self, cmds: list[Command], results: list[list[Event]]) -> None:
        """A sequencer hook: count the batch."""
        self.batches.observe(len(cmds))
        counts: dict[type[Command], int] = {}
        for cmd in cmds:
            kind = type(cmd)
            counts[kind] = counts.get(kind, 0) + 1
        for kind, n in counts.items():
            child = self._by_type.get(kind)
            if child is None:
                tag = kind.__struct_config__.tag
                child = self._by_type[kind] = self.commands.labels(str(tag))
            child.inc(n)

    def render(self) -> bytes:
        return generate_latest(self.registry)


class _State(Collector):
    """What is read when Prometheus scrapes."""

    def __init__(
        self,
        service: ExchangeService,
        ws_clients: Callable[[], int],
        upgrade: Callable[[], dict[str, Any]] | None,
        trips: Callable[[], dict[str, int]],
    ) -> None:
        self.service = service
        self.ws_clients = ws_clients
        self.upgrade = upgrade
        self.trips = trips

    def collect(self) -> Iterator[GaugeMetricFamily | CounterMetricFamily]:
        service, seq = self.service, self.service.sequencer
        if seq is None or service.recovered is None:
            return
        journal = service.recovered.journal
        yield _gauge("cambio_journal_last_seq", "Last durable command.", journal.last_seq)
        yield _gauge("cambio_applied_seq", "Last command the engine applied.", seq.applied_seq)
        yield _gauge("cambio_journal_lag_commands",
                     "Commands accepted and not yet durable.", seq.queued)  # fmt: skip
        yield _gauge("cambio_engine_lag_commands",
                     "Durable commands the engine has not applied yet.",
                     journal.last_seq - seq.applied_seq)  # fmt: skip
        if service.projection is not None:
            yield _gauge("cambio_readmodel_lag_commands",
                         "Applied commands the read models do not show yet.",
                         seq.applied_seq - service.projection.projected_seq)  # fmt: skip
        yield _gauge("cambio_group_commits", "Journal writes since start.", seq.batches)
        yield _gauge("cambio_websocket_clients", "Open WebSocket connections.", self.ws_clients())
        orders = GaugeMetricFamily("cambio_open_orders", "Resting orders per market.",
                                   labels=["pair"])  # fmt: skip
        depth = GaugeMetricFamily("cambio_book_levels", "Price levels per market and side.",
                                  labels=["pair", "side"])  # fmt: skip
        modes = GaugeMetricFamily("cambio_market_mode", "1 for each market's effective mode.",
                                  labels=["pair", "mode"])  # fmt: skip
        status = service.host.query("status")
        for p in service.config.pairs:
            book = service.host.query("orders", p.id, DEPTH_LEVELS)
            orders.add_metric([p.id], sum(len(lv[1]) for s in ("bids", "asks") for lv in book[s]))
            for side in ("bids", "asks"):
                depth.add_metric([p.id, side], len(book[side]))
            modes.add_metric([p.id, status["markets"][p.id]], 1)
        trips = CounterMetricFamily("cambio_breaker_trips", "Monitor alerts since start, "
                                    "by kind (cambio.ops.monitor).", labels=["kind"])  # fmt: skip
        for kind in KINDS:
            trips.add_metric([kind], self.trips().get(kind, 0))
        yield from (orders, depth, modes, trips)
        if self.upgrade is not None:
            yield from _upgrade(self.upgrade())


def _upgrade(u: dict[str, Any]) -> Iterator[GaugeMetricFamily]:
    phase = GaugeMetricFamily("cambio_upgrade_phase", "1 for the engine upgrade's phase.",
                              labels=["phase"])  # fmt: skip
    phase.add_metric([u["phase"]], 1)
    yield phase
    shadow = u.get("shadow")
    if shadow is not None:
        yield _gauge("cambio_upgrade_shadow_lag_commands", "Commands the shadow engine is "
                     "behind the primary.", shadow["lag"])  # fmt: skip
        yield _gauge("cambio_upgrade_shadow_diverged", "1 if the shadow engine diverged.",
                     1 if shadow["divergence"] or shadow["state"] == "diverged" else 0)  # fmt: skip
        declared = GaugeMetricFamily("cambio_upgrade_declared_differences",
                                     "Differences a declared change accounted for.",
                                     labels=["change"])  # fmt: skip
        for name, count in shadow["declared"].items():
            declared.add_metric([name], count)
        yield declared


def _gauge(name: str, doc: str, value: float) -> GaugeMetricFamily:
    return GaugeMetricFamily(name, doc, value=value)
