"""Fee promotions from the operator's CLI on a real server: trades it covers pay its
rates (seen in Kraken's TradesHistory), others do not, ending it restores the schedule,
and bad promotions are refused without a change."""

from __future__ import annotations

import subprocess
import sys
from collections.abc import Iterator
from datetime import UTC, datetime
from typing import Any

import pytest
from test_kraken_rest import Krakenex, admin
from test_server import drain, start


@pytest.fixture(scope="module")
def venue(tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict[str, Any]]:
    data = tmp_path_factory.mktemp("promo") / "data"
    proc, info = start(data)
    drain(proc)
    try:
        keys = {}
        for who in ("mia", "tom"):
            made = admin(data, "account", "create", who, "--deposit", "USD=100000", "--deposit",
                         "XBT=10", "--deposit", "ETH=100", "--tier", "unlimited")  # fmt: skip
            k = Krakenex(key=made["api_key"], secret=made["api_secret"])
            k.uri = info["api_url"]
            keys[who] = k
        yield {"data": data, **keys}
    finally:
        proc.terminate()
        proc.wait(30)


def trade(venue: dict[str, Any], pair: str, price: str) -> dict[str, str]:
    """mia rests a sell, tom takes it; each side's fee from TradesHistory."""
    sell = venue["mia"].query_private("AddOrder", {"pair": pair, "type": "sell",
        "ordertype": "limit", "volume": "0.1", "price": price})  # fmt: skip
    assert sell["error"] == [], sell
    buy = venue["tom"].query_private("AddOrder", {"pair": pair, "type": "buy",
        "ordertype": "limit", "volume": "0.1", "price": price})  # fmt: skip
    assert buy["error"] == [], buy
    fees = {}
    for who, txid in (("maker", sell["result"]["txid"][0]), ("taker", buy["result"]["txid"][0])):
        k = venue["mia" if who == "maker" else "tom"]
        trades = k.query_private("TradesHistory")["result"]["trades"]
        (mine,) = [t for t in trades.values() if t["ordertxid"] == txid]
        fees[who] = mine["fee"]
    return fees


def test_a_promotion_caps_the_fees_it_covers_until_it_ends(venue: dict[str, Any]) -> None:
    data = venue["data"]
    normal = trade(venue, "XBTUSD", "50000")
    assert float(normal["maker"]) > 0 and float(normal["taker"]) > 0
    made = admin(data, "promo", "create", "--maker", "0", "--taker", "0.1", "--until",
                 "month-end", "--pairs", "XBTUSD", "--reason", "compensation")  # fmt: skip
    assert (made["maker"], made["taker"], made["scope"], made["pairs"]) == (
        "0", "0.1", "spot", ["XXBTZUSD"],
    )  # fmt: skip
    first_of_next = datetime.fromisoformat(made["until"])
    assert first_of_next > datetime.now(UTC) and first_of_next.day == 1
    covered = trade(venue, "XBTUSD", "50000")
    assert float(covered["maker"]) == 0
    assert float(covered["taker"]) == pytest.approx(5000 * 0.001)  # 0.1 % of 5,000 USD
    other = trade(venue, "ETHUSD", "2000")  # another market: the schedule's fees
    assert float(other["maker"]) > 0
    (listed,) = admin(data, "promo", "list")["promotions"]
    assert (listed["promo_id"], listed["state"]) == (made["promo_id"], "active")
    admin(data, "promo", "end", made["promo_id"], "--reason", "done")
    assert admin(data, "promo", "list")["promotions"][0]["state"] == "ended"
    assert trade(venue, "XBTUSD", "50000") == normal


@pytest.mark.parametrize(
    "args, error",
    [
        (["--maker", "-1", "--taker", "0", "--until", "month-end"], "maker"),
        (["--maker", "0", "--taker", "101", "--until", "month-end"], "taker"),
        (["--maker", "0", "--taker", "0", "--until", "2020-01-01T00:00Z"], "until"),
        (["--maker", "0", "--taker", "0", "--until", "tomorrow"], "until"),
        (["--maker", "0", "--taker", "0", "--until", "month-end", "--pairs", "NOPE"], "pair"),
    ],
    ids=["negative", "over-100", "past", "not-a-time", "unknown-pair"],
)
def test_a_bad_promotion_is_refused_and_changes_nothing(
    venue: dict[str, Any], args: list[str], error: str
) -> None:
    before = admin(venue["data"], "promo", "list")
    out = subprocess.run([sys.executable, "-m", "cambio", "admin", "--data", str(venue["data"]),
                          "promo", "create", *args, "--reason", "x"],
                         capture_output=True, text=True, timeout=60)  # fmt: skip
    assert out.returncode == 1 and error in out.stderr.lower(), out.stderr
    assert admin(venue["data"], "promo", "list") == before
