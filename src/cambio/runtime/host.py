"""Engine hosts: the narrow protocol through which the runtime drives an engine.

Batches of commands in, their events out; a snapshot, the state hash and the event hash
chain on request. `InProcessHost` calls an `Exchange` directly (the fast path);
`cambio.runtime.subprocess_host.SubprocessHost` speaks the same protocol as msgpack over a
pipe to an engine in another process, which may be another checkout or virtualenv. The
upgrade tools rest on this: any engine that answers the protocol can rehearse, shadow or
take over.
"""

from __future__ import annotations

import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Any, Protocol

from cambio.engine import Exchange, queries
from cambio.model.commands import Command
from cambio.model.config import MarketConfig
from cambio.model.events import Event
from cambio.runtime.subprocess_host import SubprocessHost


class EngineHost(Protocol):
    """What the runtime needs of an engine, wherever it runs."""

    def apply(self, commands: Sequence[Command]) -> list[list[Event]]:
        """Apply sequenced commands in order; the events of each, in order."""
        ...

    def snapshot(self) -> bytes:
        """The canonical snapshot document of the current state."""
        ...

    def state_hash(self) -> str: ...

    def chain(self) -> str:
        """The event hash chain after the last applied command."""
        ...

    def query(self, name: str, *args: Any) -> Any:
        """A read-only question (cambio.engine.queries), answered as plain data."""
        ...

    def close(self) -> None: ...


class InProcessHost:
    """An engine in this process: no copies, no encoding."""

    def __init__(self, config: MarketConfig, snapshot: bytes | None = None) -> None:
        self.engine = Exchange.restore(config, snapshot) if snapshot else Exchange(config)

    def apply(self, commands: Sequence[Command]) -> list[list[Event]]:
        apply = self.engine.apply
        return [apply(cmd) for cmd in commands]

    def snapshot(self) -> bytes:
        return self.engine.snapshot()

    def state_hash(self) -> str:
        return self.engine.state_hash()

    def chain(self) -> str:
        return self.engine.chain()

    def query(self, name: str, *args: Any) -> Any:
        return queries.answer(self.engine, name, list(args))

    def close(self) -> None:
        pass


def open_host(
    kind: str,
    config: MarketConfig,
    config_path: Path,
    snapshot: bytes | None = None,
    python: str = sys.executable,
) -> EngineHost:
    """An engine host of `kind` ("inprocess" or "subprocess", the latter run by `python`)
    for the markets in `config` (read from `config_path` by a subprocess)."""
    if kind == "subprocess":
        return SubprocessHost(config_path, snapshot, python=python)
    return InProcessHost(config, snapshot)
