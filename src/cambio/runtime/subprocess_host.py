"""An engine host in a child process, driven over a pipe (see host_protocol).

``SubprocessHost(python="/other/venv/bin/python")`` runs the engine of another checkout or
virtualenv; the runtime cannot tell it from an `InProcessHost` except by speed.
"""

from __future__ import annotations

import contextlib
import subprocess
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Any, cast

import msgspec

from cambio.model.commands import Command
from cambio.model.events import AnyEvent, Event
from cambio.runtime.host_protocol import PROTOCOL, ProtocolError, read_frame, write_frame

_encoder = msgspec.msgpack.Encoder()
_events = msgspec.msgpack.Decoder(list[list[AnyEvent]])


class SubprocessHost:
    def __init__(
        self,
        config_path: Path | None = None,
        snapshot: bytes | None = None,
        python: str = sys.executable,
        env: dict[str, str] | None = None,
    ) -> None:
        """`python` runs the engine; `env` (default: this process's) is its environment,
        e.g. PYTHONPATH pointing at another checkout's ``src``."""
        argv = [python, "-m", "cambio.runtime.host_server"]
        if config_path is not None:
            argv += ["--config", str(config_path)]
        # its own session: a Ctrl-C meant for the server must not kill the engine before
        # the server has drained and snapshotted
        self.proc = subprocess.Popen(
            argv, stdin=subprocess.PIPE, stdout=subprocess.PIPE, start_new_session=True, env=env
        )
        hello = self._call("hello")
        if hello.get("protocol") != PROTOCOL:
            self.close()
            raise ProtocolError(f"engine host speaks protocol {hello.get('protocol')}")
        self.version: str = hello["version"]
        if snapshot:
            try:
                self._call("restore", snapshot)
            except ProtocolError:
                self.close()
                raise

    def _call(self, op: str, arg: Any = None) -> Any:
        assert self.proc.stdin is not None and self.proc.stdout is not None
        try:
            write_frame(self.proc.stdin, [op, arg])
            reply = read_frame(self.proc.stdout)
        except (BrokenPipeError, OSError) as exc:
            raise ProtocolError(f"engine host died: {exc}") from exc
        if reply is None:
            raise ProtocolError(f"engine host exited (code {self.proc.poll()})")
        status, value = reply
        if status != "ok":
            raise ProtocolError(f"engine host refused {op}: {value}")
        return value

    def apply_raw(self, commands: bytes) -> bytes:
        """Encoded commands in, encoded event lists out: for comparing across builds."""
        out: bytes = self._call("apply", commands)
        return out

    def apply(self, commands: Sequence[Command]) -> list[list[Event]]:
        decoded = _events.decode(self.apply_raw(_encoder.encode(list(commands))))
        return cast(list[list[Event]], decoded)

    def snapshot(self) -> bytes:
        out: bytes = self._call("snapshot")
        return out

    def state_hash(self) -> str:
        return str(self._call("state_hash"))

    def chain(self) -> str:
        return str(self._call("chain"))

    def query(self, name: str, *args: Any) -> Any:
        return self._call("query", [name, list(args)])

    def close(self) -> None:
        if self.proc.poll() is None:
            with contextlib.suppress(ProtocolError):
                self._call("close")
            self.proc.wait(timeout=10)
        for stream in (self.proc.stdin, self.proc.stdout):
            if stream is not None:
                with contextlib.suppress(OSError):  # a dead child leaves a broken pipe
                    stream.close()
