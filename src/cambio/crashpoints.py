"""Named crash points, so crash tests can kill the process at an exact, chosen moment.

``CAMBIO_CRASH="journal.synced:3"`` makes the process SIGKILL itself the third time it
reaches ``crashpoint("journal.synced")``: no clean-up, no flush, exactly what ``kill -9``
leaves behind (a power cut also loses what was written but not fsynced; the crash tests
simulate that by tearing the last write after the kill). Without the variable every crash
point is one global test; nothing in the engine uses them (it has no I/O to interrupt).
"""

from __future__ import annotations

import os
import signal

_name, _, _count = os.environ.get("CAMBIO_CRASH", "").partition(":")
_remaining = int(_count or "1") if _name else 0


def crashpoint(name: str) -> None:
    """Die here (SIGKILL) if this is the armed crash point's chosen visit."""
    global _remaining
    if _remaining and name == _name:
        _remaining -= 1
        if _remaining == 0:
            os.kill(os.getpid(), signal.SIGKILL)
