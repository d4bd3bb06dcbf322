"""Heartbeats: the running exchange's vital signs in a file, for the status service.

The status service runs as its own process so that it keeps working while the exchange
is down; it therefore never asks the exchange anything. `cambio serve` rewrites
DIR/heartbeat.json every `--heartbeat-s` seconds from its event loop instead: a heartbeat
older than a few intervals means the process is dead or its loop is stuck (the loop is
what answers every request, so either way the exchange is not serving), and
`"stopping": true` means a planned stop. The file is replaced atomically (a temporary
file renamed over it), so a reader never sees half of one; it is not fsync'd, since it
only says what is true now, and one lost in a crash says what a stale one says.

The fields are the contract the status service reads: docs/architecture.md, "Heartbeats".
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import os
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from cambio import __version__
from cambio.runtime.service import ExchangeService

log = logging.getLogger("cambio.heartbeat")
FILENAME = "heartbeat.json"  # in the data directory


@dataclass
class Heartbeat:
    service: ExchangeService
    path: Path
    interval_s: float = 1.0
    ws_clients: Callable[[], int] | None = None  # open WebSocket connections, if known
    upgrade_phase: Callable[[], str] | None = None  # the engine upgrade's phase, if known
    # its live figures (rehearsal progress and ETA, the window, the shadow's lag), if any
    upgrade_detail: Callable[[], dict[str, Any] | None] | None = None
    alerts: Callable[[], int] = lambda: 0  # monitor alerts since start
    stopping: bool = False  # a stop was asked for: what is still written says so
    _task: asyncio.Task[None] | None = None
    _engine_failed: bool = False  # the engine could not answer: logged once

    def beat(self, failure: str | None = None, serving: bool = True) -> dict[str, Any]:
        """The heartbeat document now (see docs/architecture.md, "Heartbeats")."""
        service = self.service
        sequencer = service.sequencer
        assert sequencer is not None
        lags = service.lags()
        doc: dict[str, Any] = {
            "ts": time.time(),
            "interval_s": self.interval_s,
            "pid": os.getpid(),
            "version": __version__,
            "seq": sequencer.applied_seq,
            "engine_lag": lags["engine"],
            "journal_lag": lags["journal"],
            "readmodel_lag": lags.get("readmodels"),
            "global": None,
            "markets": None,
            "funding": None,
            "ws_clients": self.ws_clients() if self.ws_clients is not None else None,
            "upgrade": self.upgrade_phase() if self.upgrade_phase is not None else None,
            "upgrade_detail": self.upgrade_detail() if self.upgrade_detail else None,
            "withdrawals_queued": None,
            "alerts": self.alerts(),
            "api": {"rest": serving, "ws": serving},
            "stopping": self.stopping,
            "failure": failure,
        }
        try:
            status = service.host.query("status")
        except Exception as exc:  # a dead engine host: the rest is still worth writing
            if not self._engine_failed:
                log.error("heartbeat: the engine does not answer: %r", exc)
            self._engine_failed = True
            return doc
        self._engine_failed = False
        config = service.config
        doc["global"] = status["global"]
        doc["markets"] = {config.pair(p).wsname: mode for p, mode in status["markets"].items()}
        doc["funding"] = {asset: {"deposits": bool(on[0]), "withdrawals": bool(on[1])}
                          for asset, on in status["funding"].items()}  # fmt: skip
        doc["withdrawals_queued"] = len(service.host.query("withdrawals"))
        return doc

    def write(self, failure: str | None = None, serving: bool = True) -> dict[str, Any]:
        """Write a heartbeat now; returns what was written."""
        doc = self.beat(failure, serving)
        tmp = self.path.with_name(self.path.name + ".tmp")
        try:
            tmp.write_text(json.dumps(doc, sort_keys=True) + "\n")
            os.replace(tmp, self.path)
        except OSError as exc:  # a full disk must not stop the exchange: the status
            log.error("heartbeat: cannot write %s: %r", self.path, exc)  # ... sees it stale
        return doc

    def start(self) -> None:
        """Write a heartbeat now and then every `interval_s` seconds, on this loop."""
        self.write()
        self._task = asyncio.get_running_loop().create_task(self._run())

    async def _run(self) -> None:
        while True:
            await asyncio.sleep(self.interval_s)
            self.write()

    async def stop(self, failure: str | None = None) -> None:
        """Stop writing; write the last heartbeat: stopping, the gateways closed, and the
        failure that halted the exchange, if one did. Call before the engine is closed."""
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
            self._task = None
        self.stopping = True
        self.write(failure, serving=False)
