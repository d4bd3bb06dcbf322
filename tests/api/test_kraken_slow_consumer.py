"""Back-pressure on the WebSocket feed: a client that stops reading is disconnected once
it falls `--ws-backlog` messages behind, and meanwhile neither the engine nor the other
clients wait for it."""

from __future__ import annotations

import asyncio
import json
import socket
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import pytest
import websockets
from test_kraken_rest import Krakenex, admin
from test_server import start

BACKLOG = 20
REQUESTS = 1000  # each answered by an ack and a ~10 kB book snapshot: far beyond buffers


@pytest.fixture(scope="module")
def venue(tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict[str, Any]]:
    data: Path = tmp_path_factory.mktemp("slow") / "data"
    proc, info = start(data, "--ws-backlog", str(BACKLOG))
    try:
        maker = admin(data, "account", "create", "maker", "--deposit", "USD=10000000",
                      "--tier", "unlimited")  # fmt: skip
        k = Krakenex(key=maker["api_key"], secret=maker["api_secret"])
        k.uri = info["api_url"]
        for i in range(200):  # a deep book makes every snapshot large
            reply = k.query_private("AddOrder", {"pair": "XBTUSD", "type": "buy",
                                                 "ordertype": "limit", "volume": "0.01",
                                                 "price": str(20000 + i)})  # fmt: skip
            assert reply["error"] == [], reply
        yield {"info": info, "ws": info["api_url"].replace("http://", "ws://") + "/v2", "k": k}
    finally:
        proc.terminate()
        proc.wait(30)


def test_a_client_that_stops_reading_is_disconnected_and_slows_no_one(
    venue: dict[str, Any],
) -> None:
    url = urlsplit(venue["ws"])

    async def run() -> tuple[int, Any, float]:
        raw = socket.socket()
        raw.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)  # a reader that lags
        raw.connect((url.hostname, url.port))
        async with websockets.connect(venue["ws"]) as healthy:
            await healthy.recv()  # status
            slow = await websockets.connect(venue["ws"], sock=raw, max_queue=1)
            subscribe = json.dumps({"method": "subscribe", "params": {
                "channel": "book", "symbol": ["BTC/USD"], "depth": 1000}})  # fmt: skip
            for _ in range(REQUESTS):  # and never read the answers
                await slow.send(subscribe)
            # the server keeps serving others while the slow client's answers pile up
            started = time.monotonic()
            await healthy.send(json.dumps({"method": "ping", "req_id": 1}))
            pong = json.loads(await asyncio.wait_for(healthy.recv(), 5))
            assert pong["method"] == "pong"
            placed = await asyncio.to_thread(
                venue["k"].query_private, "AddOrder", {"pair": "XBTUSD", "type": "buy",
                "ordertype": "limit", "volume": "0.01", "price": "19000"})  # fmt: skip
            assert placed["error"] == [], placed
            others_waited = time.monotonic() - started
            received = 0
            try:
                while True:  # read what made it into the buffers, then the close
                    await asyncio.wait_for(slow.recv(), 30)
                    received += 1
            except websockets.ConnectionClosed as exc:
                return received, exc.rcvd, others_waited

    received, close, others_waited = asyncio.run(run())
    assert received < 2 * REQUESTS  # the rest was thrown away, not kept for it
    assert close is None or close.code == 1008, close
    assert others_waited < 5


def test_the_backlog_option_is_checked_and_documented() -> None:
    import subprocess
    import sys

    out = subprocess.run([sys.executable, "-m", "cambio", "serve", "--help"],
                         capture_output=True, text=True, timeout=60)  # fmt: skip
    assert "--ws-backlog" in out.stdout
    bad = subprocess.run([sys.executable, "-m", "cambio", "serve", "--ws-backlog", "0"],
                         capture_output=True, text=True, timeout=60)  # fmt: skip
    assert bad.returncode == 2 and "--ws-backlog" in bad.stderr
