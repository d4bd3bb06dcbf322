"""kill -9 in the middle of a withdrawal batch, at each step of the funding worker
(before a deposit is credited, right after, after a withdrawal is sent to custody, after
custody paid it, after the broadcast is recorded, before completion): after a restart
every deposit is credited once, every withdrawal is paid exactly once, balances are
exact, and `cambio verify` reconciles the ledger with the chain."""

from __future__ import annotations

import json
import signal
import subprocess
import time
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest
from test_kraken_rest import Krakenex, admin
from test_server import cambio, drain, start, wait_for

from cambio.custody.adapter import CONFIRMED
from cambio.custody.backends import open_simchain
from cambio.model.config import load_config

CONFIG = load_config()
XBT = CONFIG.asset("XXBT")
FEE = Decimal(XBT.withdraw_fee).scaleb(-XBT.units)
COUNT = 6  # withdrawals in the batch
FAST = ("--custody", "sim", "--chain-block-s", "0", "--funding-poll", "0.05")
POINTS = [
    "funding.deposit:1",
    "funding.credited:1",
    "funding.sent:3",
    "funding.paid:3",
    "funding.broadcast:3",
    "funding.confirmed:3",
]


def serve(
    data: Path, crash: str | None, monkeypatch: pytest.MonkeyPatch
) -> tuple[subprocess.Popen[bytes], dict[str, Any]]:
    if crash:
        monkeypatch.setenv("CAMBIO_CRASH", crash)
    else:
        monkeypatch.delenv("CAMBIO_CRASH", raising=False)
    proc, info = start(data, *FAST)
    return proc, info


@pytest.mark.parametrize("point", POINTS)
def test_each_withdrawal_is_paid_exactly_once_across_kill_9(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, point: str
) -> None:
    data = tmp_path / "data"
    proc, info = serve(data, point, monkeypatch)
    log = drain(proc)
    alice = admin(data, "account", "create", "alice", "--permissions",
                  "query_funds,query_orders,trade,withdraw", "--tier", "unlimited")  # fmt: skip
    k = Krakenex(key=alice["api_key"], secret=alice["api_secret"])
    k.uri = info["api_url"]
    admin(data, "address", "add", "alice", "XBT", "cold", "bc1q" + "c" * 38)
    chain = open_simchain(data, CONFIG, block_s=0)
    (addr,) = k.query_private("DepositAddresses", {"asset": "XBT", "method": "Bitcoin"})["result"]
    chain.pay_in(addr["address"], 10**XBT.units)  # 1 XBT
    refids: list[str] = []
    deadline = time.monotonic() + 60
    while proc.poll() is None:  # drive the worker until it reaches its crash point
        assert time.monotonic() < deadline, "\n".join(log[-30:])
        chain.mine()
        try:
            balance = k.query_private("Balance")["result"].get("XXBT", "0")
            if Decimal(balance) > 0 and not refids:
                for _ in range(COUNT):
                    r = k.query_private("Withdraw", {"asset": "XBT", "key": "cold",
                                                     "amount": "0.01"})  # fmt: skip
                    refids.append(r["result"]["refid"])
        except OSError:
            break  # it died under us
        time.sleep(0.05)
    assert proc.wait(10) == -signal.SIGKILL, "\n".join(log[-30:])

    proc, info = serve(data, None, monkeypatch)
    log = drain(proc)
    k.uri = info["api_url"]
    if not refids:  # died while crediting: the deposit is credited once after the restart
        wait_for(lambda: Decimal(k.query_private("Balance")["result"].get("XXBT", "0")) > 0,
                 "the deposit", 20, log)  # fmt: skip
        for _ in range(COUNT):
            r = k.query_private("Withdraw", {"asset": "XBT", "key": "cold", "amount": "0.01"})
            refids.append(r["result"]["refid"])

    # the kill may have cut the test's own requests short: what the exchange acknowledged
    # is what its journal holds, and every one of those must be paid exactly once
    def statuses() -> list[dict[str, Any]]:
        found: list[dict[str, Any]] = k.query_private("WithdrawStatus", {"asset": "XBT"})["result"]
        return found

    def all_done() -> bool:
        chain.mine()
        return all(s["status"] == "Success" for s in statuses())

    wait_for(all_done, "every withdrawal completed", 30, log)
    acknowledged = {s["refid"] for s in statuses()}
    assert set(refids) <= acknowledged and len(acknowledged) >= 3
    payouts = chain.payouts()
    assert sorted(p.withdrawal_id for p in payouts) == sorted(acknowledged)  # one each
    assert all(p.state == CONFIRMED for p in payouts)
    left = Decimal(k.query_private("Balance")["result"]["XXBT"])
    assert left == 1 - len(acknowledged) * (Decimal("0.01") + FEE)
    deposits = k.query_private("DepositStatus", {"asset": "XBT"})["result"]
    assert len(deposits) == 1 and deposits[0]["status"] == "Success"
    chain.close()
    proc.send_signal(signal.SIGTERM)
    assert proc.wait(30) == 0
    report = json.loads(cambio("verify", "--data", str(data)).stdout)
    assert report["ok"], report["problems"]
    assert report["custody"]["payouts"] == len(acknowledged)
