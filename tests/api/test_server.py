"""`cambio serve`, `verify`, `replay` and `rebuild` as an operator runs them: real processes."""

from __future__ import annotations

import json
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

CAMBIO = [sys.executable, "-m", "cambio"]
UNGUARDED = ["--price-band", "1000", "--vol-pct", "0"]  # the market breakers, off
# no status page either (a test that wants one says so): each would be a process of its
# own, and one spawned by a server a test kills -9 outlives it, as it should
QUIET = [*UNGUARDED, "--status-page", "off"]


def start(data: Path, *args: str) -> tuple[subprocess.Popen[bytes], dict[str, Any]]:
    proc = subprocess.Popen(
        # API tests trade far apart on purpose (40,000 against 60,000): no price band and
        # no volatility breaker unless a test sets one (tests/ops/test_monitor.py); the
        # last option given wins
        [*CAMBIO, "serve", "--data", str(data), "--port", "0", *QUIET, *args],
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
    )
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        assert proc.poll() is None, proc.communicate()[0].decode()
        try:
            info: dict[str, Any] = json.loads((data / "serve.json").read_text())
            if info["pid"] == proc.pid:
                return proc, info
        except (FileNotFoundError, json.JSONDecodeError):
            pass
        time.sleep(0.05)
    proc.kill()
    raise AssertionError("cambio serve did not start")


def drain(proc: subprocess.Popen[bytes]) -> list[str]:
    """The server's output lines, read by a thread as they come: a pipe nobody reads
    fills up and then blocks the server's logging (and the server)."""
    lines: list[str] = []

    def read() -> None:
        assert proc.stdout is not None
        for raw in proc.stdout:
            lines.append(raw.decode(errors="replace").rstrip())

    threading.Thread(target=read, daemon=True).start()
    return lines


def wait_for(
    check: Callable[[], bool], what: str, seconds: float = 30, log: list[str] | None = None
) -> None:
    """Poll `check` until it holds; after `seconds`, fail naming `what` (and showing the
    end of the server's `log`, if given)."""
    deadline = time.monotonic() + seconds
    while not check():
        assert time.monotonic() < deadline, f"timed out waiting for {what}: " + "\n".join(
            (log or [])[-30:]
        )
        time.sleep(0.02)


def cambio(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([*CAMBIO, *args], capture_output=True, text=True, timeout=120)


@pytest.fixture
def served(
    tmp_path: Path,
) -> Iterator[tuple[Path, subprocess.Popen[bytes], dict[str, Any], httpx.Client]]:
    data = tmp_path / "data"
    proc, info = start(data, "--tick-interval", "0.05")
    token = (data / "admin.token").read_text().strip()
    admin = httpx.Client(base_url=info["admin_url"], headers={"Authorization": f"Bearer {token}"})
    yield data, proc, info, admin
    admin.close()
    if proc.poll() is None:
        proc.kill()
        proc.wait()


def test_serve_runs_answers_and_stops_cleanly_on_sigterm(served: Any) -> None:
    data, proc, info, admin = served
    assert set(info) >= {"api_url", "admin_url", "pid"}
    assert info["admin_url"].startswith("http://127.0.0.1:")
    assert oct((data / "admin.token").stat().st_mode & 0o777) == "0o600"
    now = httpx.get(info["api_url"] + "/0/public/Time").json()
    assert now["error"] == [] and abs(now["result"]["unixtime"] - time.time()) < 5

    reply = admin.post(
        "/v1/commands", json={"type": "deposit", "account": 7, "asset": "XBT", "amount": 5}
    ).json()
    assert reply["error"] == [] and reply["result"]["events"][0][0] == "deposited"
    assert httpx.post(info["admin_url"] + "/v1/commands", json={}).status_code == 401
    bad = admin.post("/v1/commands", json={"type": "deposit", "account": "x"}).json()
    assert bad["error"][0].startswith("EGeneral:Invalid arguments")
    huge = {"type": "deposit", "account": 1, "asset": "XBT", "amount": 2**64, "ref": "h"}
    assert (
        admin.post("/v1/commands", json=huge)
        .json()["error"][0]
        .startswith("EGeneral:Invalid arguments")
    )  # refused alone; the exchange goes on

    time.sleep(0.3)  # ticks are journaled on their own
    state = admin.get("/v1/state").json()["result"]
    assert state["applied_seq"] > reply["result"]["seq"]

    second = cambio("serve", "--data", str(data), "--port", "0")
    assert second.returncode != 0 and "in use" in second.stderr

    proc.send_signal(signal.SIGTERM)
    assert proc.wait(30) == 0
    assert not (data / "serve.json").exists()
    snaps = sorted((data / "snapshots").glob("*.snap"))
    assert snaps and int(snaps[-1].stem) >= state["applied_seq"]

    report = json.loads(cambio("verify", "--data", str(data)).stdout)
    assert report["ok"] and report["snapshot"]["matches"]
    assert report["per_asset"]["XXBT"]["deposited"] == "0.0000000000005"

    replay = cambio("replay", "--data", str(data), "--engine", "subprocess")
    figures = json.loads(replay.stdout)
    assert replay.returncode == 0 and figures["state_hash"] == report["state_hash"]
    assert figures["commands"] == report["commands"] and figures["commands_per_s"] > 0

    rebuilt = cambio("rebuild", "--data", str(data))
    assert rebuilt.returncode == 0
    assert json.loads(rebuilt.stdout)["projected_seq"] == report["last_seq"]


def test_restart_continues_the_sequence_with_the_same_state(served: Any) -> None:
    data, proc, _info, admin = served
    before = admin.post(
        "/v1/commands", json={"type": "deposit", "account": 1, "asset": "ZUSD", "amount": 99}
    ).json()["result"]
    first, first_ledger_id = before["seq"], before["events"][0][1]
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    proc2, info2 = start(data)
    try:
        token = (data / "admin.token").read_text().strip()
        with httpx.Client(
            base_url=info2["admin_url"], headers={"Authorization": f"Bearer {token}"}
        ) as admin2:
            again = admin2.post(
                "/v1/commands",
                json={"type": "deposit", "account": 1, "asset": "ZUSD", "amount": 1, "ref": "b"},
            ).json()["result"]
        assert again["seq"] > first
        assert again["events"][0][1] > first_ledger_id  # ledger ids go on after the kill
    finally:
        proc2.send_signal(signal.SIGTERM)
        assert proc2.wait(30) == 0


def test_verify_fails_on_a_damaged_journal(served: Any) -> None:
    data, proc, _info, admin = served
    for i in range(5):
        admin.post(
            "/v1/commands",
            json={"type": "deposit", "account": 1, "asset": "ZUSD", "amount": 10, "ref": str(i)},
        )
    proc.send_signal(signal.SIGTERM)
    assert proc.wait(30) == 0
    (segment,) = (data / "journal").glob("*.seg")
    raw = bytearray(segment.read_bytes())
    raw[60] ^= 0xFF  # inside the first record, with intact records after it
    segment.write_bytes(bytes(raw))
    result = cambio("verify", "--data", str(data))
    report = json.loads(result.stdout)
    assert result.returncode == 1 and not report["ok"]
    assert "acknowledged" in report["problems"][0]


def test_verify_help_teaches() -> None:
    out = cambio("verify", "--help").stdout
    assert "--data" in out and "exits 0 only if" in out
