"""`cambio admin compensate` on a real server: trades under a free promotion, what it
was worth to each account (`--basis waived`), a refund of the fees paid before it
(`--basis fees-paid --credit`) paid once however often it is run, seen by the trader in
Kraken's Ledgers with its reason, and refusals that pay nothing."""

from __future__ import annotations

import subprocess
import sys
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest
from test_kraken_rest import Krakenex, admin
from test_server import drain, start


@pytest.fixture(scope="module")
def venue(tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict[str, Any]]:
    data = tmp_path_factory.mktemp("compensate") / "data"
    proc, info = start(data)
    drain(proc)
    try:
        out: dict[str, Any] = {"data": data}
        for who in ("mia", "tom"):
            made = admin(data, "account", "create", who, "--deposit", "USD=100000", "--deposit",
                         "XBT=10", "--deposit", "ETH=100", "--tier", "unlimited")  # fmt: skip
            k = Krakenex(key=made["api_key"], secret=made["api_secret"])
            k.uri = info["api_url"]
            out[who], out[who + "_id"] = k, made["account"]
        yield out
    finally:
        proc.terminate()
        proc.wait(30)


def trade(venue: dict[str, Any], pair: str, volume: str, price: str) -> None:
    """mia rests a sell (maker), tom takes it (taker)."""
    for who, side in (("mia", "sell"), ("tom", "buy")):
        r = venue[who].query_private("AddOrder", {"pair": pair, "type": side,
            "ordertype": "limit", "volume": volume, "price": price})  # fmt: skip
        assert r["error"] == [], r


def compensate(data: Path, *args: str) -> subprocess.CompletedProcess[str]:
    command = [sys.executable, "-m", "cambio", "admin", "--data", str(data), "compensate"]
    return subprocess.run([*command, *args], capture_output=True, text=True, timeout=120)


def usd(venue: dict[str, Any], who: str) -> Decimal:
    r = venue[who].query_private("Balance")
    return Decimal(r["result"]["ZUSD"])


def now() -> str:
    return datetime.now(UTC).isoformat()


def test_what_a_promotion_was_worth_then_a_refund_paid_once(venue: dict[str, Any]) -> None:
    data, mia, tom = venue["data"], venue["mia_id"], venue["tom_id"]
    before = now()
    trade(venue, "XBTUSD", "0.1", "50000")  # 5,000 USD: maker 0.16 % = 8, taker 0.26 % = 13
    promo_at = now()
    promo = admin(data, "promo", "create", "--maker", "0", "--taker", "0", "--until",
                  "month-end", "--reason", "compensation for the outage")  # fmt: skip
    trade(venue, "XBTUSD", "0.1", "50000")
    trade(venue, "XBTUSD", "0.1", "50000")
    trade(venue, "ETHUSD", "0.1", "2000")  # 200 USD: 0.32 and 0.52
    admin(data, "promo", "end", promo["promo_id"], "--reason", "month over")

    # (a) what the waiver was worth: the fees of the three trades it covered
    worth = admin(data, "compensate", "--basis", "waived", "--promotion", promo["promo_id"])
    assert worth["basis"] == "waived" and worth["trades"] == 3 and worth["closed"]
    assert worth["promotion"]["promo_id"] == promo["promo_id"]
    shares = {a["account"]: a for a in worth["per_account"]}
    assert shares[mia]["amounts"]["ZUSD"]["amount"] == "16.3200000000"
    assert shares[tom]["amounts"]["ZUSD"]["amount"] == "26.5200000000"
    assert shares[tom]["amounts"]["ZUSD"]["units"] == 265_200_000_000
    assert (shares[mia]["trades"], shares[tom]["trades"]) == (3, 3)
    assert worth["totals"] == {"ZUSD": {"units": 428_400_000_000, "amount": "42.8400000000"}}
    assert worth["problems"] == [] and worth["credit"] is False and "credits" not in worth
    # the same as a plain window over the promotion's time (nothing else was waived)
    window = admin(data, "compensate", "--basis", "waived", "--from", before, "--until", now())
    assert window["totals"] == worth["totals"]

    # (b) refund what was paid before the promotion (the "outage"): 8 and 13 USD
    refund = ["--basis", "fees-paid", "--from", before, "--until", promo_at]
    dry = admin(data, "compensate", *refund)
    assert dry["trades"] == 1 and dry["totals"]["ZUSD"]["amount"] == "21.0000000000"
    tom_before = usd(venue, "tom")
    paid = admin(data, "compensate", *refund, "--credit", "--reason", "refund: degraded matching")
    assert (paid["credited"], paid["already_paid"], paid["refused"]) == (2, 0, 0)
    credits = {c["account"]: c for c in paid["credits"]}
    assert credits[tom]["amount"] == "13.0000000000" and credits[tom]["status"] == "credited"
    assert credits[tom]["ref"] == f"{paid['id']}/{tom}/ZUSD" and credits[tom]["seq"] > 0
    assert usd(venue, "tom") == tom_before + 13

    # running it again pays nobody twice, nor narrowed to one account at another percent
    again = admin(data, "compensate", *refund, "--credit", "--reason", "refund: degraded matching")
    assert (again["credited"], again["already_paid"], again["id"]) == (0, 2, paid["id"])
    narrowed = admin(data, "compensate", *refund, "--account", "tom", "--percent", "150",
                     "--credit", "--reason", "refund again")  # fmt: skip
    assert (narrowed["credited"], narrowed["already_paid"]) == (0, 1)
    assert usd(venue, "tom") == tom_before + 13

    # the trader sees it in Ledgers: type credit, the reason as its reference
    ledger = venue["tom"].query_private("Ledgers", {"type": "credit"})["result"]
    assert ledger["count"] == 1
    (entry,) = ledger["ledger"].values()
    assert (entry["type"], entry["refid"], entry["asset"], entry["amount"]) == (
        "credit", "refund: degraded matching", "ZUSD", "13.0000",
    )  # fmt: skip

    # another compensation (its own id) is paid from what is left in the fee account: the
    # refund took the 21 USD it had, so it is refused and nothing moves
    broke = admin(data, "compensate", *refund, "--id", "goodwill-1", "--credit", "--reason",
                  "goodwill")  # fmt: skip
    assert (broke["credited"], broke["refused"]) == (0, 2)
    assert {c["error"] for c in broke["credits"]} == {"EOrder:Insufficient funds"}
    assert usd(venue, "tom") == tom_before + 13


PAST = ["--from", "2021-01-01T00:00Z", "--until", "2022-01-01T00:00Z"]
OPEN = ["--from", "2021-01-01T00:00Z", "--until", "2999-01-01T00:00Z"]


@pytest.mark.parametrize(
    "args, error",
    [
        (["--basis", "fees-paid", *OPEN, "--credit", "--reason", "x"], "still open"),
        (["--basis", "fees-paid", *PAST, "--credit"], "--reason"),
        (["--basis", "waived"], "--promotion"),
        (["--basis", "waived", "--promotion", "promo-nope"], "unknown promotion"),
        (
            ["--basis", "fees-paid", "--from", "2021-01-01T00:00", "--until", "2022-01-01T00:00Z"],
            "zone",
        ),
        (["--basis", "fees-paid", *PAST, "--percent", "0"], "percent"),
        (["--basis", "fees-paid", *PAST, "--pair", "NOPE"], "pair"),
    ],
    ids=[
        "open-window",
        "no-reason",
        "no-window",
        "unknown-promo",
        "no-zone",
        "zero-percent",
        "unknown-pair",
    ],
)
def test_refusals_pay_nothing(venue: dict[str, Any], args: list[str], error: str) -> None:
    before = usd(venue, "tom")
    out = compensate(venue["data"], *args)
    assert out.returncode != 0 and error in out.stderr, out.stderr
    assert usd(venue, "tom") == before


def test_help_teaches() -> None:
    out = subprocess.run([sys.executable, "-m", "cambio", "admin", "compensate", "--help"],
                         capture_output=True, text=True, timeout=60)  # fmt: skip
    assert out.returncode == 0
    for words in ("--basis waived --promotion", "--credit --reason", "pays nobody twice",
                  "margin selects nothing"):  # fmt: skip
        assert words in " ".join(out.stdout.split()), words


def test_a_future_window_is_computed_but_not_final(venue: dict[str, Any]) -> None:
    later = (datetime.now(UTC) + timedelta(days=1)).isoformat()
    got = admin(venue["data"], "compensate", "--basis", "fees-paid", "--from", now(), "--until",
                later)  # fmt: skip
    assert got["closed"] is False and got["trades"] == 0
