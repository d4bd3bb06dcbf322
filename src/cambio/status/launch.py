"""How `cambio serve` starts the status page: as its own process, in its own session, so
that a crash of the exchange (even kill -9 of its process group) leaves it serving.

If a status page already serves the data directory (one that outlived a crash, or one the
operator runs), it is used, never a second one. Its output goes to DATA/status/page.log.
"""

from __future__ import annotations

import contextlib
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

from cambio.status.service import DIRNAME, running


def ensure(
    root: Path, host: str, port: int, timeout: float = 20.0
) -> tuple[dict[str, Any], subprocess.Popen[bytes] | None]:
    """(its {"url", "pid"}, the process if this call started it)."""
    found = running(root)
    if found is not None:
        return found, None
    (root / DIRNAME).mkdir(parents=True, exist_ok=True)
    with (root / DIRNAME / "page.log").open("ab") as log:
        proc = subprocess.Popen(
            [sys.executable, "-m", "cambio", "status-page", "--data", str(root),
             "--host", host, "--port", str(port)],
            stdin=subprocess.DEVNULL, stdout=log, stderr=subprocess.STDOUT,
            start_new_session=True,
        )  # fmt: skip
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        info = running(root)
        if info is not None and info.get("pid") == proc.pid:
            return info, proc
        if proc.poll() is not None:
            break
        time.sleep(0.05)
    stop(proc)
    tail = (root / DIRNAME / "page.log").read_text(errors="replace")[-2000:]
    raise RuntimeError(f"the status page did not start:\n{tail}")


def stop(proc: subprocess.Popen[bytes], timeout: float = 10.0) -> None:
    if proc.poll() is None:
        proc.terminate()
        try:
            proc.wait(timeout)
        except subprocess.TimeoutExpired:
            proc.kill()
            with contextlib.suppress(subprocess.TimeoutExpired):
                proc.wait(timeout)
