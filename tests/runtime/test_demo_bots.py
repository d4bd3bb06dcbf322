"""`cambio serve --demo`: the bots make every market move, the printed key works, and the
journal they leave behind passes `cambio verify`."""

from __future__ import annotations

import json
import re
import signal
import sys
import time
from pathlib import Path
from typing import Any

import httpx
import krakenex

sys.path.insert(0, str(Path(__file__).parents[1] / "api"))  # test_server's helpers
from test_server import cambio, drain, start


def demo_key(lines: list[str], deadline: float) -> tuple[str, str]:
    while time.monotonic() < deadline:
        text = "".join(lines)
        key, secret = re.search(r"api key +(\S+)", text), re.search(r"api secret +(\S+)", text)
        if key and secret:
            return key[1], secret[1]
        time.sleep(0.05)
    raise AssertionError("no demo key printed:\n" + "".join(lines))


def market_moving(api: httpx.Client, pair: str) -> bool:
    """Bids, asks and trades on `pair`."""
    book = api.get("/0/public/Depth", params={"pair": pair}).json()["result"]
    trades = api.get("/0/public/Trades", params={"pair": pair}).json()["result"]
    (side,) = book.values()
    return bool(side["bids"] and side["asks"] and trades[next(k for k in trades if k != "last")])


def test_demo_bots_trade_every_pair_and_the_demo_key_works(tmp_path: Path) -> None:
    data = tmp_path / "data"
    proc, info = start(data, "--demo")
    lines = drain(proc)
    try:
        key, secret = demo_key(lines, time.monotonic() + 10)
        with httpx.Client(base_url=info["api_url"], timeout=10) as api:
            pairs = list(api.get("/0/public/AssetPairs").json()["result"])
            assert len(pairs) >= 2
            deadline = time.monotonic() + 15
            waiting = set(pairs)
            while waiting and time.monotonic() < deadline:
                waiting = {p for p in waiting if not market_moving(api, p)}
                time.sleep(0.25)
            assert not waiting, f"no two-sided book with trades on {sorted(waiting)}"

        k = krakenex.API(key=key, secret=secret)
        k.uri = info["api_url"]
        balance: dict[str, Any] = k.query_private("Balance")
        assert balance["error"] == []
        assert float(balance["result"]["ZUSD"]) == 100000 and float(balance["result"]["XXBT"]) == 10
        time.sleep(0.002)  # krakenex's nonce is time in ms
        order = k.query_private(
            "AddOrder", {"pair": "XBTUSD", "type": "buy", "ordertype": "market", "volume": "0.001"}
        )
        assert order["error"] == [] and order["result"]["txid"]
    finally:
        proc.send_signal(signal.SIGTERM)
        code = proc.wait(30)
    assert code == 0, "".join(lines)
    assert not any("Traceback" in line for line in lines), "".join(lines)
    report = json.loads(cambio("verify", "--data", str(data)).stdout)
    assert report["ok"] and report["problems"] == []

    # a restart reuses the accounts: no second deposit, a new key
    proc, _ = start(data, "--demo")
    lines = drain(proc)
    try:
        assert demo_key(lines, time.monotonic() + 10) != (key, secret)
    finally:
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(30) == 0
    again = json.loads(cambio("verify", "--data", str(data)).stdout)
    assert (
        again["ok"]
        and again["per_asset"]["ZUSD"]["deposited"] == (report["per_asset"]["ZUSD"]["deposited"])
    )
