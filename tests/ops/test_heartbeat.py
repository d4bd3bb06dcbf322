"""Heartbeats: a real server rewrites DATA/heartbeat.json on its cadence with what the
status service needs (modes, funding switches, lags, clients), shows an operator's
change within a beat, and says "stopping" as its last word on a clean stop; a heartbeat
is still written when the engine cannot answer."""

from __future__ import annotations

import asyncio
import json
import signal
import time
from pathlib import Path
from typing import Any

import pytest
from test_kraken_rest import admin
from test_server import drain, start, wait_for
from websockets.sync.client import connect

from cambio.model.config import load_config
from cambio.ops.heartbeat import FILENAME, Heartbeat


def read(data: Path) -> dict[str, Any]:
    beat: dict[str, Any] = json.loads((data / FILENAME).read_text())
    return beat


def test_a_server_beats_shows_changes_and_says_when_it_stops(tmp_path: Path) -> None:
    data = tmp_path / "data"
    proc, info = start(data, "--heartbeat-s", "0.1")
    log = drain(proc)
    try:
        first = read(data)  # written before serve.json names this server
        assert first["pid"] == proc.pid and abs(first["ts"] - time.time()) < 5
        assert first["interval_s"] == 0.1 and first["api"] == {"rest": True, "ws": True}
        assert (first["stopping"], first["failure"], first["upgrade"]) == (False, None, "idle")
        assert first["global"] == "online" and first["alerts"] == 0
        assert first["markets"]["XBT/USD"] == "online" and len(first["markets"]) == len(
            load_config().pairs
        )
        assert first["funding"]["XXBT"] == {"deposits": True, "withdrawals": True}
        assert first["engine_lag"] >= 0 and first["journal_lag"] >= 0
        assert first["readmodel_lag"] >= 0 and first["ws_clients"] == 0
        wait_for(lambda: read(data)["ts"] > first["ts"] + 0.15, "a later heartbeat", log=log)

        with connect(info["api_url"].replace("http://", "ws://") + "/v2"):
            wait_for(lambda: read(data)["ws_clients"] == 1, "the WebSocket client", log=log)
        admin(data, "mode", "set", "cancel_only", "--pair", "XBTUSD", "--reason", "thin book")
        wait_for(lambda: read(data)["markets"]["XBT/USD"] == "cancel_only", "the mode", log=log)
        beat = read(data)
        assert beat["markets"]["ETH/USD"] == "online" and beat["seq"] > first["seq"]
        admin(data, "halt", "--reason", "maintenance")
        wait_for(lambda: read(data)["global"] == "maintenance", "the halt", log=log)
        assert read(data)["funding"]["XXBT"] == {"deposits": True, "withdrawals": False}

        proc.send_signal(signal.SIGTERM)
        assert proc.wait(30) == 0
        last = read(data)
        assert last["stopping"] is True and last["api"] == {"rest": False, "ws": False}
        assert last["failure"] is None and last["global"] == "maintenance"
        assert sorted(p.name for p in data.iterdir() if p.name.startswith("heartbeat")) == [
            FILENAME
        ]  # no temporary file left behind
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()


class DeadHost:
    def query(self, name: str, *args: Any) -> Any:
        raise ConnectionError("engine host died")


class Sequencer:
    applied_seq = 41


class Service:
    config = load_config()
    host = DeadHost()
    sequencer = Sequencer()

    def lags(self) -> dict[str, int]:
        return {"journal": 2, "engine": 1}


def test_a_dead_engine_still_gets_a_heartbeat_without_modes(tmp_path: Path) -> None:
    beat = Heartbeat(Service(), tmp_path / FILENAME)  # type: ignore[arg-type]
    written = beat.write()
    assert read(tmp_path) == written
    assert (written["seq"], written["engine_lag"], written["journal_lag"]) == (41, 1, 2)
    assert written["markets"] is None and written["global"] is None
    assert written["readmodel_lag"] is None and written["ws_clients"] is None


@pytest.mark.parametrize("failure", [None, "exchange halted: OSError()"])
def test_the_last_heartbeat_says_stopping_and_why(tmp_path: Path, failure: str | None) -> None:
    beat = Heartbeat(Service(), tmp_path / FILENAME, interval_s=0.01)  # type: ignore[arg-type]

    async def run() -> None:
        beat.start()
        await asyncio.sleep(0.05)
        await beat.stop(failure)

    asyncio.run(run())
    last = read(tmp_path)
    assert (last["stopping"], last["failure"], last["api"]["rest"]) == (True, failure, False)
