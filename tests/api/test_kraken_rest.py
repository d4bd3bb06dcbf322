"""Kraken REST compatibility: real, unmodified clients (krakenex, ccxt) against a real
`cambio serve`, plus the signing scheme against the reference's test vector."""

from __future__ import annotations

import base64
import hashlib
import json
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any
from urllib.parse import urlencode

import ccxt
import httpx
import krakenex
import pytest
from test_server import start

from cambio.api.kraken.auth import signature


def test_signature_matches_the_reference_test_vector() -> None:
    secret = (
        "kQH5HW/8p1uGOVjbgWA7FunAmGO8lsSUXNsu3eow76sz84Q18fWxnyRzBHCd3pd5nE9qa99HAZtuZuj6F1huXg=="
    )
    body = b"nonce=1616492376594&ordertype=limit&pair=XBTUSD&price=37500&type=buy&volume=1.25"
    assert signature("/0/private/AddOrder", "1616492376594", body, secret) == (
        "4/dpxb3iT4tp/ZCVEwSnEsLxx0bqyhLpdfOpc6fn7OR8+UClSV5n9E6aSS8MPtnRfp32bAb0nmbRn6H8ndwLUQ=="
    )


def admin(data: Path, *args: str) -> dict[str, Any]:
    out = subprocess.run(
        [sys.executable, "-m", "cambio", "admin", "--data", str(data), *args],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert out.returncode == 0, out.stderr
    result: dict[str, Any] = json.loads(out.stdout)
    return result


@pytest.fixture(scope="module")
def exchange(tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict[str, Any]]:
    data = tmp_path_factory.mktemp("kraken") / "data"
    proc, info = start(data)
    try:
        alice = admin(data, "account", "create", "alice", "--deposit", "USD=10000",
                      "--deposit", "XBT=1.5")  # fmt: skip
        bob = admin(data, "account", "create", "bob", "--deposit", "XXBT=2")
        reader = admin(data, "key", "create", "alice", "--permissions", "query_orders")
        raw = admin(data, "key", "create", "alice")  # for hand-signed requests
        token = (data / "admin.token").read_text().strip()
        with httpx.Client(
            base_url=info["admin_url"], headers={"Authorization": f"Bearer {token}"}
        ) as http:
            for account, side, price in (
                (alice["account"], 0, 499_000),
                (bob["account"], 1, 501_000),
            ):
                order = {"type": "add_order", "account": account, "pair": "XXBTZUSD",
                         "side": side, "qty": 10_000_000, "price": price}  # fmt: skip
                assert http.post("/v1/commands", json=order).json()["error"] == []
        yield {"data": data, "info": info, "alice": alice, "bob": bob, "reader": reader,
               "raw": raw}  # fmt: skip
    finally:
        proc.terminate()
        proc.wait(30)


class Krakenex(krakenex.API):  # type: ignore[misc]
    """krakenex as shipped; its nonce is time in ms, so two calls within one millisecond
    share a nonce (refused, as Kraken does): the tests space their calls."""

    def query_private(self, method: str, data: Any = None, timeout: Any = None) -> Any:
        time.sleep(0.002)
        return super().query_private(method, data, timeout)


def kx(exchange: dict[str, Any], who: str = "alice") -> krakenex.API:
    k = Krakenex(key=exchange[who]["api_key"], secret=exchange[who]["api_secret"])
    k.uri = exchange["info"]["api_url"]
    return k


def test_admin_account_create_prints_the_account_and_its_key(exchange: dict[str, Any]) -> None:
    alice, bob = exchange["alice"], exchange["bob"]
    assert {"account", "api_key", "api_secret"} <= set(alice)
    assert alice["account"] != bob["account"] and alice["api_key"] != bob["api_key"]
    assert [d["asset"] for d in alice["deposits"]] == ["ZUSD", "XXBT"]


def test_krakenex_public_calls(exchange: dict[str, Any]) -> None:
    k = kx(exchange)
    now = k.query_public("Time")["result"]
    assert abs(now["unixtime"] - time.time()) < 5 and now["rfc1123"].endswith("+0000")
    assert k.query_public("SystemStatus")["result"]["status"] == "online"
    assets = k.query_public("Assets", {"asset": "XBT,ZUSD"})["result"]
    assert assets["XXBT"]["altname"] == "XBT" and assets["XXBT"]["decimals"] == 10
    assert set(assets) == {"XXBT", "ZUSD"}
    pair = k.query_public("AssetPairs", {"pair": "XBTUSD"})["result"]["XXBTZUSD"]
    assert (pair["pair_decimals"], pair["lot_decimals"], pair["ordermin"]) == (1, 8, "0.0001")
    assert pair["fees"][0] == [0, 0.26] and pair["fees_maker"][0] == [0, 0.16]
    book = k.query_public("Depth", {"pair": "XBTUSD", "count": 10})["result"]["XXBTZUSD"]
    assert [level[:2] for level in book["bids"]] == [["49900.0", "0.10000000"]]
    assert [level[:2] for level in book["asks"]] == [["50100.0", "0.10000000"]]
    assert k.query_public("Depth", {"pair": "NOPE"})["error"] == ["EQuery:Unknown asset pair"]
    assert k.query_public("Nothing")["error"] == ["EGeneral:Unknown method"]


def test_krakenex_balances_include_what_orders_hold(exchange: dict[str, Any]) -> None:
    balance = kx(exchange).query_private("Balance")
    assert balance == {"error": [], "result": {"XXBT": "1.5000000000", "ZUSD": "10000.0000"}}
    ex = kx(exchange).query_private("BalanceEx")["result"]
    # 0.1 @ 49,900 plus the highest fee it could pay (0.26 %)
    assert ex["ZUSD"] == {"balance": "10000.0000", "hold_trade": "5002.9740"}
    assert kx(exchange, "bob").query_private("Balance")["result"] == {"XXBT": "2.0000000000"}


def private_post(exchange: dict[str, Any], method: str, nonce: int, secret: str | None = None,
                 key: str | None = None) -> list[str]:  # fmt: skip
    who = exchange["raw"]
    body = urlencode({"nonce": nonce}).encode()
    path = f"/0/private/{method}"
    headers = {
        "API-Key": key or who["api_key"],
        "API-Sign": signature(path, str(nonce), body, secret or who["api_secret"]),
        "Content-Type": "application/x-www-form-urlencoded",
    }
    reply = httpx.post(exchange["info"]["api_url"] + path, content=body, headers=headers)
    assert reply.status_code == 200  # API errors are HTTP 200, as Kraken's clients expect
    errors: list[str] = reply.json()["error"]
    return errors


def test_authentication_failures_answer_krakens_errors(exchange: dict[str, Any]) -> None:
    nonce = time.time_ns()
    assert private_post(exchange, "Balance", nonce) == []
    assert private_post(exchange, "Balance", nonce) == ["EAPI:Invalid nonce"]  # replayed
    assert private_post(exchange, "Balance", nonce - 1) == ["EAPI:Invalid nonce"]
    forged = base64.b64encode(hashlib.sha512(b"not the secret").digest()).decode()
    assert private_post(exchange, "Balance", nonce + 1, secret=forged) == ["EAPI:Invalid signature"]
    assert private_post(exchange, "Balance", nonce + 2, key="unknown") == ["EAPI:Invalid key"]
    assert private_post(exchange, "Balance", nonce + 3) == []  # a forgery burnt no nonce
    assert kx(exchange, "reader").query_private("Balance")["error"] == [
        "EGeneral:Permission denied"
    ]


def test_a_revoked_key_is_refused_at_once(exchange: dict[str, Any]) -> None:
    extra = admin(exchange["data"], "key", "create", "bob")
    exchange["extra"] = extra
    assert kx(exchange, "extra").query_private("Balance")["error"] == []
    assert admin(exchange["data"], "key", "revoke", extra["api_key"]) == {"revoked": True}
    assert kx(exchange, "extra").query_private("Balance")["error"] == ["EAPI:Invalid key"]


def test_ccxt_loads_markets_books_and_balances(exchange: dict[str, Any]) -> None:
    ex = ccxt.kraken(
        {
            "apiKey": exchange["alice"]["api_key"],
            "secret": exchange["alice"]["api_secret"],
            "enableRateLimit": False,
        }
    )
    ex.urls["api"]["public"] = ex.urls["api"]["private"] = exchange["info"]["api_url"]
    markets = ex.load_markets()
    assert {"BTC/USD", "ETH/BTC", "SOL/USD"} <= set(markets)
    btc = markets["BTC/USD"]
    assert btc["id"] == "XXBTZUSD" and btc["active"] and btc["limits"]["amount"]["min"] == 0.0001
    assert ex.fetch_status()["status"] == "ok"
    book = ex.fetch_order_book("BTC/USD")
    assert book["bids"][0][:2] == [49900.0, 0.1] and book["asks"][0][:2] == [50100.0, 0.1]
    balance = ex.fetch_balance()
    assert balance["total"]["BTC"] == 1.5 and balance["total"]["USD"] == 10000.0
    assert balance["used"]["USD"] == 5002.974


def test_refused_admin_requests_create_nothing(exchange: dict[str, Any]) -> None:
    def refused(*args: str) -> str:
        out = subprocess.run(
            [sys.executable, "-m", "cambio", "admin", "--data", str(exchange["data"]), *args],
            capture_output=True,
            text=True,
            timeout=60,
        )
        assert out.returncode != 0, out.stdout
        return out.stderr

    assert "unknown permission" in refused(
        "account", "create", "zed", "--permissions", "query_funds,everything"
    )
    assert "unknown asset" in refused("account", "create", "zed", "--deposit", "DOGE=1")
    assert "not positive" in refused("account", "create", "zed", "--deposit", "XBT=0")
    assert "not positive" in refused("account", "deposit", "alice", "XBT", "--", "-1")
    zed = admin(exchange["data"], "account", "create", "zed")  # the name is still free
    assert zed["account"] == exchange["bob"]["account"] + 1  # and no id was used up
