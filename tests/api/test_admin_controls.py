"""The operator's controls on a real server, seen through Kraken's API: halt keeps every
order, balance and pending withdrawal; a staged resume steps through cancel_only and
post_only on the server's own Ticks; market modes and funding switches answer with the
reference's errors; every control needs a reason."""

from __future__ import annotations

import subprocess
import sys
from collections.abc import Iterator
from typing import Any

import pytest
from test_kraken_rest import Krakenex, admin
from test_server import drain, start, wait_for

COLD = "bc1qxy2kgdygjrsqtzq2n0yrf2493p83kkfjhx0wlh"


@pytest.fixture(scope="module")
def desk(tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict[str, Any]]:
    data = tmp_path_factory.mktemp("controls") / "data"
    proc, info = start(data, "--tick-interval", "0.05")
    drain(proc)
    try:
        alice = admin(data, "account", "create", "alice", "--deposit", "XBT=2", "--deposit",
                      "USD=100000", "--permissions", "query_funds,query_orders,trade,withdraw",
                      "--tier", "unlimited")  # fmt: skip
        admin(data, "address", "add", "alice", "XBT", "cold", COLD)
        k = Krakenex(key=alice["api_key"], secret=alice["api_secret"])
        k.uri = info["api_url"]
        yield {"data": data, "k": k}
    finally:
        proc.terminate()
        proc.wait(30)


def call(k: Krakenex, method: str, **params: Any) -> dict[str, Any]:
    public = method in ("SystemStatus",)
    reply: dict[str, Any] = (k.query_public if public else k.query_private)(method, params)
    return reply


def order(k: Krakenex, price: str, **extra: Any) -> dict[str, Any]:
    return call(k, "AddOrder", pair="XBTUSD", type="buy", ordertype="limit", volume="0.01",
                price=price, **extra)  # fmt: skip


def status(k: Krakenex) -> str:
    return str(call(k, "SystemStatus")["result"]["status"])


def test_halt_keeps_everything_and_a_staged_resume_reopens_step_by_step(
    desk: dict[str, Any],
) -> None:
    k, data = desk["k"], desk["data"]
    (txid,) = order(k, "20000")["result"]["txid"]
    refid = call(k, "Withdraw", asset="XBT", key="cold", amount="0.1")["result"]["refid"]
    before = (call(k, "OpenOrders")["result"], call(k, "BalanceEx")["result"])

    halted = admin(data, "halt", "--reason", "engine upgrade")
    assert halted["global_mode"] == "maintenance" and status(k) == "maintenance"
    assert order(k, "20000")["error"] == ["EService:Unavailable"]
    assert call(k, "CancelOrder", txid=txid)["error"] == ["EService:Unavailable"]
    assert call(k, "Withdraw", asset="XBT", key="cold", amount="0.1")["error"][0].startswith(
        "EFunding:"
    )
    assert (call(k, "OpenOrders")["result"], call(k, "BalanceEx")["result"]) == before
    (pending,) = [w for w in call(k, "WithdrawStatus", asset="XBT")["result"]
                  if w["refid"] == refid]  # fmt: skip
    assert pending["status"] == "Pending"

    resumed = admin(data, "resume", "--staged", "--cancel-only-for", "1", "--post-only-for",
                    "1", "--reason", "upgrade done")  # fmt: skip
    assert resumed["global_mode"] == "cancel_only" and status(k) == "cancel_only"
    assert order(k, "20000")["error"] == ["EService:Market in cancel_only mode"]
    wait_for(lambda: status(k) == "post_only", "post_only")
    assert order(k, "20000")["error"] == ["EService:Market in post_only mode"]
    assert order(k, "20000", oflags="post")["error"] == []
    wait_for(lambda: status(k) == "online", "online")
    assert order(k, "20000")["error"] == []
    assert call(k, "OpenOrders")["result"]["open"].keys() >= before[0]["open"].keys()
    # withdrawals only when the operator turns them on
    assert call(k, "Withdraw", asset="XBT", key="cold", amount="0.1")["error"][0].startswith(
        "EFunding:"
    )
    admin(data, "funding", "set", "XBT", "--withdrawals", "on", "--reason", "wallet checked")
    assert call(k, "Withdraw", asset="XBT", key="cold", amount="0.1")["error"] == []


def test_a_market_mode_applies_to_its_market_only(desk: dict[str, Any]) -> None:
    k, data = desk["k"], desk["data"]
    admin(data, "mode", "set", "post_only", "--pair", "XBTUSD", "--reason", "thin book")
    try:
        assert order(k, "20000")["error"] == ["EService:Market in post_only mode"]
        eth = call(k, "AddOrder", pair="ETHUSD", type="buy", ordertype="limit",
                   volume="0.1", price="1000")  # fmt: skip
        assert eth["error"] == [] and status(k) == "online"
    finally:
        admin(data, "mode", "set", "online", "--pair", "XBTUSD", "--reason", "book is back")
    assert order(k, "20000")["error"] == []


def test_every_control_needs_a_reason_and_valid_arguments(desk: dict[str, Any]) -> None:
    data = desk["data"]

    def cli(*args: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run([sys.executable, "-m", "cambio", "admin", "--data", str(data),
                               *args], capture_output=True, text=True, timeout=60)  # fmt: skip

    for args in (["halt"], ["resume"], ["mode", "set", "online"],
                 ["funding", "set", "XBT", "--deposits", "off"]):  # fmt: skip
        out = cli(*args)
        assert out.returncode == 2 and "--reason" in out.stderr, args
    out = cli("mode", "set", "online", "--pair", "NOPE", "--reason", "x")
    assert out.returncode == 1 and "Unknown asset pair" in out.stderr
    out = cli("funding", "set", "DOGE", "--withdrawals", "off", "--reason", "x")
    assert out.returncode == 1 and "Unknown asset" in out.stderr
    assert status(desk["k"]) == "online"  # nothing changed
