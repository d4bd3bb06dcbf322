"""Prometheus metrics scraped over HTTP from a real server's admin port and read with
prometheus-client's own parser: they follow what was done."""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
import websockets
from prometheus_client.parser import text_string_to_metric_families
from test_kraken_rest import Krakenex, admin
from test_server import drain, start


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict[str, Any]]:
    data: Path = tmp_path_factory.mktemp("metrics") / "data"
    proc, info = start(data)
    drain(proc)
    try:
        who = admin(data, "account", "create", "m", "--deposit", "USD=100000", "--tier",
                    "unlimited")  # fmt: skip
        k = Krakenex(key=who["api_key"], secret=who["api_secret"])
        k.uri = info["api_url"]
        yield {"data": data, "info": info, "k": k}
    finally:
        proc.terminate()
        proc.wait(30)


def scrape(server: dict[str, Any], token: str | None = None) -> httpx.Response:
    token = token or (server["data"] / "admin.token").read_text().strip()
    return httpx.get(server["info"]["admin_url"] + "/metrics",
                     headers={"Authorization": f"Bearer {token}"}, timeout=30)  # fmt: skip


def samples(server: dict[str, Any]) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    reply = scrape(server)
    assert reply.status_code == 200 and reply.headers["content-type"].startswith("text/plain")
    out = {}
    for family in text_string_to_metric_families(reply.text):
        for s in family.samples:
            out[(s.name, tuple(sorted(s.labels.items())))] = s.value
    return out


def test_metrics_follow_orders_batches_latency_books_and_clients(server: dict[str, Any]) -> None:
    k = server["k"]
    before = samples(server)
    orders = before.get(("cambio_commands_total", (("type", "add_order"),)), 0)
    for i in range(5):
        reply = k.query_private("AddOrder", {"pair": "XBTUSD", "type": "buy",
                                             "ordertype": "limit", "volume": "0.01",
                                             "price": str(20000 + i)})  # fmt: skip
        assert reply["error"] == []

    async def with_a_client() -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
        ws = server["info"]["api_url"].replace("http://", "ws://") + "/v2"
        async with websockets.connect(ws) as sock:
            await sock.recv()  # status: the connection is registered
            return await asyncio.to_thread(samples, server)

    now = asyncio.run(with_a_client())
    assert now[("cambio_commands_total", (("type", "add_order"),))] == orders + 5
    assert now[("cambio_open_orders", (("pair", "XXBTZUSD"),))] == 5
    assert now[("cambio_book_levels", (("pair", "XXBTZUSD"), ("side", "bids")))] == 5
    assert now[("cambio_market_mode", (("mode", "online"), ("pair", "XXBTZUSD")))] == 1
    assert now[("cambio_websocket_clients", ())] == 1
    assert now[("cambio_applied_seq", ())] == now[("cambio_journal_last_seq", ())] > 0
    assert now[("cambio_engine_lag_commands", ())] == 0
    # every acknowledged command is one latency observation, every batch one size
    acked = now[("cambio_ack_latency_seconds_count", ())]
    assert acked - before.get(("cambio_ack_latency_seconds_count", ()), 0) >= 5
    assert now[("cambio_ack_latency_seconds_bucket", (("le", "+Inf"),))] == acked
    assert now[("cambio_batch_commands_sum", ())] == sum(
        v for (name, _), v in now.items() if name == "cambio_commands_total"
    )
    assert now[("cambio_upgrade_phase", (("phase", "idle"),))] == 1


def test_metrics_need_the_operator_token(server: dict[str, Any]) -> None:
    assert scrape(server, token="not-the-token").status_code == 401


def test_the_grafana_dashboard_charts_metrics_that_exist(server: dict[str, Any]) -> None:
    import json
    import re

    dashboard = json.loads((Path(__file__).parents[2] / "docs" / "grafana-dashboard.json")
                           .read_text())  # fmt: skip
    exprs = [t["expr"] for panel in dashboard["panels"] for t in panel["targets"]]
    charted = {name for e in exprs for name in re.findall(r"cambio_[a-z_]+", e)}
    served = {name for name, _ in samples(server)}
    # the upgrade's shadow metrics exist only while a shadow runs (tests/upgrade covers it)
    missing = {n for n in charted - served if not n.startswith("cambio_upgrade_shadow")}
    assert missing == set() and len(charted) >= 12
