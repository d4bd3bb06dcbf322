"""The engine side of the host protocol: ``python -m cambio.runtime.host_server``.

Run by `SubprocessHost` with the interpreter of whichever checkout or virtualenv holds the
engine to host; reads requests on stdin, answers on stdout (see host_protocol).
"""

from __future__ import annotations

import argparse
import sys
from typing import Any

import msgspec

from cambio import __version__
from cambio.engine import Exchange, queries
from cambio.model.commands import AnyCommand
from cambio.model.config import load_config
from cambio.runtime.host_protocol import PROTOCOL, read_frame, write_frame

_commands = msgspec.msgpack.Decoder(list[AnyCommand])
_encoder = msgspec.msgpack.Encoder()


def serve(config_path: str | None) -> int:
    config = load_config(config_path)
    inp, out = sys.stdin.buffer, sys.stdout.buffer
    sys.stdout = sys.stderr  # a stray print must not corrupt the protocol stream
    engine = Exchange(config)
    while True:
        request = read_frame(inp)
        if request is None:
            return 0
        op, arg = request
        reply: Any = None
        try:
            if op == "apply":
                apply = engine.apply
                reply = _encoder.encode([apply(cmd) for cmd in _commands.decode(arg)])
            elif op == "snapshot":
                reply = engine.snapshot()
            elif op == "state_hash":
                reply = engine.state_hash()
            elif op == "chain":
                reply = engine.chain()
            elif op == "query":
                reply = queries.answer(engine, arg[0], arg[1])
            elif op == "restore":
                engine = Exchange.restore(config, arg)
            elif op == "hello":
                reply = {"protocol": PROTOCOL, "version": __version__}
            elif op == "close":
                write_frame(out, ["ok", None])
                return 0
            else:
                raise ValueError(f"unknown op {op!r}")
        except Exception as exc:
            write_frame(out, ["error", f"{type(exc).__name__}: {exc}"])
            continue
        write_frame(out, ["ok", reply])


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description="Host a cambio engine over stdin/stdout.")
    parser.add_argument("--config", help="markets TOML (default: the packaged markets)")
    args = parser.parse_args(argv)
    return serve(args.config)


if __name__ == "__main__":
    sys.exit(main())
