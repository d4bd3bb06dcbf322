"""`cambio serve` and its status page: started as a process of its own, named in
serve.json, still serving after the exchange is killed with kill -9, found (not started
twice) by the next start, and stopped with the exchange on a clean stop of the server
that started it."""

from __future__ import annotations

import json
import os
import signal
from pathlib import Path

import httpx
from test_server import drain, start, wait_for


def alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    return True


def test_the_status_page_outlives_a_crash_and_is_found_again(tmp_path: Path) -> None:
    data = tmp_path / "data"
    proc, info = start(data, "--status-page", "spawn")
    drain(proc)
    pid, url = info["status_pid"], info["status_url"]
    try:
        assert pid != proc.pid and alive(pid)
        assert httpx.get(url + "/api/v2/status.json").json()["status"]["indicator"] == "none"
        proc.send_signal(signal.SIGKILL)
        proc.wait(10)
        assert httpx.get(url + "/healthz").status_code == 200  # kill -9 left it serving
        proc, info = start(data, "--status-page", "spawn")
        drain(proc)
        assert (info["status_pid"], info["status_url"]) == (pid, url)  # found, not doubled
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(30) == 0
        assert alive(pid)  # it was found, not started, by this server: it stays
    finally:
        if proc.poll() is None:
            proc.kill()
        os.kill(pid, signal.SIGTERM)
    wait_for(lambda: not alive(pid), "the status page to stop", 15)


def test_a_clean_stop_stops_the_page_the_server_started(tmp_path: Path) -> None:
    data = tmp_path / "data"
    proc, info = start(data, "--status-page", "spawn")
    drain(proc)
    pid = info["status_pid"]
    assert json.loads((data / "status" / "status.json").read_text())["pid"] == pid
    proc.send_signal(signal.SIGTERM)
    assert proc.wait(30) == 0
    wait_for(lambda: not alive(pid), "the status page to stop", 15)
    assert not (data / "status" / "status.json").exists()
