"""A live engine upgrade on a real `cambio serve` under its demo bots' load, with a
trader's REST orders flowing throughout: an unmodified candidate shadows, takes over in a
measured pause and is completed; a mutant is caught by its shadow from the bots' own
trades and cutover refuses; a mutant that only differs on input the bots never send takes
over, diverges on that input, and the previous engine is put back automatically. No
acknowledged order is lost through any of it."""

from __future__ import annotations

import json
import subprocess
import sys
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from test_kraken_rest import Krakenex, admin
from test_server import drain, start, wait_for
from upgrade_fixtures import MUTANTS, make_candidate

MUTANT = {m.name: m for m in MUTANTS}
SLOW = 60  # seconds: a shadow starts a process and catches up under the bots' load
TOO_PRECISE = "EOrder:Invalid price:XXBTZUSD price can only be specified up to 1 decimals."


def upgrade(data: Path, *args: str) -> tuple[int, Any]:
    """`cambio upgrade ARGS --data DATA`: (exit code, its JSON or its error text)."""
    out = subprocess.run([sys.executable, "-m", "cambio", "upgrade", *args, "--data", str(data)],
                         capture_output=True, text=True, timeout=120)  # fmt: skip
    return out.returncode, json.loads(out.stdout) if out.returncode == 0 else out.stderr


class Trader(threading.Thread):
    """Places small resting orders one after another; keeps the ids it was given."""

    def __init__(self, k: Krakenex) -> None:
        super().__init__(daemon=True)
        self.k, self.acked, self.errors = k, [], []
        self.running = True

    def run(self) -> None:
        while self.running:
            reply = self.k.query_private("AddOrder", {"pair": "XBTUSD", "type": "buy",
                "ordertype": "limit", "volume": "0.0005", "price": "10000"})  # fmt: skip
            if reply["error"]:
                self.errors.append(reply["error"])
            else:
                self.acked.extend(reply["result"]["txid"])


@pytest.fixture(scope="module")
def live(tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict[str, Any]]:
    root = tmp_path_factory.mktemp("live")
    data = root / "data"
    proc, info = start(data, "--demo", "--demo-rate", "20", "--tick-interval", "0.1")
    log = drain(proc)
    try:
        who = admin(data, "account", "create", "trader", "--deposit", "USD=1000000",
                    "--tier", "unlimited")  # fmt: skip
        k = Krakenex(key=who["api_key"], secret=who["api_secret"])
        k.uri = info["api_url"]
        other = admin(data, "key", "create", "trader")  # the tests' own nonces
        mine = Krakenex(key=other["api_key"], secret=other["api_secret"])
        mine.uri = info["api_url"]
        trader = Trader(k)
        trader.start()
        yield {"root": root, "data": data, "k": mine, "trader": trader,
               "admin_url": info["admin_url"], "log": log}  # fmt: skip
        trader.running = False
        trader.join(30)
    finally:
        proc.terminate()
        proc.wait(60)


def status(live: dict[str, Any]) -> dict[str, Any]:
    code, out = upgrade(live["data"], "status")
    assert code == 0, out
    result: dict[str, Any] = out
    return result


def shadow(live: dict[str, Any], name: str | None, label: str) -> dict[str, Any]:
    checkout = make_candidate(live["root"] / label, MUTANT[name] if name else None)
    code, out = upgrade(live["data"], "shadow", "--candidate", str(checkout))
    assert code == 0 and out["phase"] == "shadowing", out
    return dict(out)


def test_0_a_rehearsal_beside_the_server_is_announced_with_its_eta(live: dict[str, Any]) -> None:
    checkout = make_candidate(live["root"] / "rehearsed", None)
    out = subprocess.run([sys.executable, "-m", "cambio", "upgrade", "rehearse", "--data",
                          str(live["data"]), "--candidate", str(checkout)],
                         capture_output=True, text=True, timeout=300)  # fmt: skip
    assert out.returncode == 0 and out.stdout.startswith("CLEAN: "), out.stderr
    now = status(live)
    assert now["phase"] == "rehearsing"
    rehearsal = now["rehearsal"]
    assert rehearsal["verdict"] == "clean" and rehearsal["cutover_eta_s"] > 0
    assert rehearsal["candidate"] == str(checkout) and "Basis" not in rehearsal["basis"]
    assert [h["phase"] for h in now["history"]] == ["rehearsing", "rehearsing"]
    code, err = upgrade(live["data"], "schedule", "--at", "2026-12-01T02:00")
    assert code == 1 and "time zone" in err
    code, out = upgrade(live["data"], "schedule", "--at", "2026-12-01T02:00Z", "--note", "v2")
    assert code == 0 and out["phase"] == "scheduled", out
    assert out["scheduled"]["at"] == "2026-12-01T02:00:00+00:00"
    assert out["scheduled"]["expected_s"] == rehearsal["cutover_eta_s"]


def test_1_an_unmodified_candidate_takes_over_in_a_measured_pause(live: dict[str, Any]) -> None:
    shadow(live, None, "unmodified")
    wait_for(lambda: status(live)["shadow"]["state"] == "following", "the shadow to follow", SLOW)
    token = (live["data"] / "admin.token").read_text().strip()
    scraped = httpx.get(live["admin_url"] + "/metrics",
                        headers={"Authorization": f"Bearer {token}"}, timeout=30).text  # fmt: skip
    assert 'cambio_upgrade_phase{phase="shadowing"} 1.0' in scraped
    assert "cambio_upgrade_shadow_diverged 0.0" in scraped
    code, out = upgrade(live["data"], "cutover")
    assert code == 0, out
    assert out["phase"] == "verifying" and out["shadow"]["engine"] == "previous primary"
    pause = out["cutover"]["pause_ms"]
    assert 0 < pause < 5000  # measured, and within the cutover's own time limit
    wait_for(lambda: status(live)["shadow"]["applied_seq"] > out["cutover"]["seq"],
             "the previous engine to follow the new one", SLOW)  # fmt: skip
    code, out = upgrade(live["data"], "complete")
    assert code == 0 and out["phase"] == "completed" and out["shadow"] is None
    phases = [h["phase"] for h in out["history"]]
    assert phases[-4:] == ["shadowing", "in_progress", "verifying", "completed"]


def too_precise(live: dict[str, Any]) -> dict[str, Any]:
    """An order check with one decimal too many: refused, except by the mutant that lets
    one more decimal through (the bots never send such a price)."""
    reply: dict[str, Any] = live["k"].query_private("AddOrder", {"pair": "XBTUSD",
        "type": "buy", "ordertype": "limit", "volume": "0.0001", "price": "1000.05",
        "validate": True})  # fmt: skip
    return reply


def test_2_a_mutant_is_caught_by_its_shadow_and_cutover_refuses(live: dict[str, Any]) -> None:
    shadow(live, "precision-one-decimal-more", "caught")
    wait_for(lambda: status(live)["shadow"]["state"] == "following", "the shadow to follow", SLOW)
    assert too_precise(live)["error"] == [TOO_PRECISE]
    wait_for(lambda: status(live)["shadow"]["state"] == "diverged", "the divergence", SLOW)
    assert status(live)["shadow"]["divergence"]["command"] == "AddOrder"
    wait_for(lambda: status(live)["report"] is not None, "the divergence report", SLOW)
    report = Path(status(live)["report"]).read_text()
    assert "# Rehearsal: DIVERGED" in report and "`order_validated`" in report
    code, err = upgrade(live["data"], "cutover")
    assert code == 1 and "cutover refused" in err and "diverged at seq" in err
    code, out = upgrade(live["data"], "abort", "--reason", "precision bug")
    assert code == 0 and out["phase"] == "aborted"


def test_3_a_divergence_after_cutover_rolls_back_by_itself(live: dict[str, Any]) -> None:
    # start after test 2's too-precise request, which this mutant would trip on again
    token = (live["data"] / "admin.token").read_text().strip()
    taken = httpx.post(live["admin_url"] + "/v1/snapshot",
                       headers={"Authorization": f"Bearer {token}"}, timeout=60)  # fmt: skip
    assert taken.json()["error"] == []
    shadow(live, "precision-one-decimal-more", "late")
    wait_for(lambda: status(live)["shadow"]["state"] == "following", "the shadow to follow", SLOW)
    code, out = upgrade(live["data"], "cutover")
    assert code == 0 and out["phase"] == "verifying", out
    # the new engine accepts what the previous one refuses: the shadow sees it
    assert too_precise(live)["error"] == []  # what the (wrong) new engine said
    wait_for(lambda: status(live)["phase"] == "rolled_back", "the automatic rollback", 30,
             live["log"])  # fmt: skip
    now = status(live)
    assert "diverged from the previous one" in now["rollback"]["reason"]
    assert now["rollback"]["pause_ms"] > 0 and now["rollback"]["snapshot_seq"] > 0
    # the previous engine is primary again: the same request is refused as it should be
    assert too_precise(live)["error"] == [TOO_PRECISE]


def test_4_no_acknowledged_order_was_lost(live: dict[str, Any]) -> None:
    trader, k = live["trader"], live["trader"].k
    trader.running = False
    trader.join(30)
    assert trader.errors == [] and len(trader.acked) > 20
    for i in range(0, len(trader.acked), 50):
        chunk = trader.acked[i : i + 50]
        reply = k.query_private("QueryOrders", {"txid": ",".join(chunk)})
        assert reply["error"] == [] and sorted(reply["result"]) == sorted(chunk)
