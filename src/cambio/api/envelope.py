"""Kraken's response envelope, ``{"error": [...], "result": ...}``, used by every API here.

API errors are HTTP 200 with the error strings in ``error``, as Kraken does; only
transport-level problems (no route, wrong method) use other status codes.
"""

from __future__ import annotations

from typing import Any

import msgspec
from starlette.responses import Response

from cambio.runtime.sequencer import OutcomeUnknown, SequencerStopped

_encoder = msgspec.json.Encoder()


class JSON(Response):
    media_type = "application/json"

    def render(self, content: Any) -> bytes:
        return _encoder.encode(content)


def halted(exc: SequencerStopped) -> list[str]:
    """Kraken's errors for a command the exchange could not take: unavailable, and, when
    the command had reached the journal before the halt, that its outcome is decided by
    the restart (resending it would repeat it)."""
    if isinstance(exc, OutcomeUnknown):
        return ["EService:Unavailable", "EGeneral:Outcome unknown:journaled"]
    return ["EService:Unavailable"]


def ok(result: Any) -> JSON:
    return JSON({"error": [], "result": result})


def error(*errors: str, status_code: int = 200) -> JSON:
    return JSON({"error": list(errors)}, status_code=status_code)
