"""The engine host wire protocol: length-prefixed msgpack frames over a byte stream.

Each frame is a 4-byte big-endian length and a msgpack array. Requests are
``[op, arg]``; replies are ``["ok", value]`` or ``["error", message]``. Ops:

    hello       -> {"protocol": 1, "version": str}
    restore b   -> nil        (b: a snapshot document; the engine starts from it)
    apply b     -> bytes      (b: msgpack list of commands; reply: msgpack list of event lists)
    snapshot    -> bytes
    state_hash  -> str
    chain       -> str
    query [n,a] -> any        (a read-only question: cambio.engine.queries.answer(n, a))
    close       -> nil        (the server exits)

Commands and events cross as msgpack bytes that each side decodes with its own types, so
the two ends may be different builds of cambio as long as they agree on the encoding.
"""

from __future__ import annotations

import struct
from typing import IO, Any

import msgspec

PROTOCOL = 1
_LEN = struct.Struct(">I")
_encoder = msgspec.msgpack.Encoder()


class ProtocolError(Exception):
    """The other end broke the protocol, failed a request, or went away."""


def write_frame(stream: IO[bytes], value: Any) -> None:
    body = _encoder.encode(value)
    stream.write(_LEN.pack(len(body)) + body)
    stream.flush()


def read_frame(stream: IO[bytes]) -> Any | None:
    """The next frame's value; None at a clean end of stream."""
    head = stream.read(_LEN.size)
    if not head:
        return None
    if len(head) < _LEN.size:
        raise ProtocolError("stream ended inside a frame header")
    (n,) = _LEN.unpack(head)
    body = stream.read(n)
    if len(body) < n:
        raise ProtocolError("stream ended inside a frame")
    return msgspec.msgpack.decode(body)
