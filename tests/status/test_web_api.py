"""Statuspage's public v2 API served by the status web app, checked against Statuspage's
documented shapes, and read by an existing Statuspage reader (a Prometheus exporter)."""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys
from collections.abc import Iterator
from datetime import datetime
from pathlib import Path
from typing import Any

import httpx
import pytest
from prometheus_client.parser import text_string_to_metric_families
from test_web_support import NOW, PAGE, SPECS, Clock, Scenario, empty_store, scenario, serve

from cambio.status.model import DEGRADED, MAINTENANCE, MAJOR, PARTIAL, PageInfo
from cambio.status.store import StatusStore
from cambio.status.web import status_app

# Statuspage's documented fields (status-reference 1.1 and 1.3)
PAGE_KEYS = {"id", "name", "url", "time_zone", "updated_at"}
STATUS_KEYS = {"indicator", "description"}
COMPONENT_KEYS = {
    "id", "name", "description", "status", "position", "showcase", "start_date",
    "group_id", "group", "only_show_if_degraded", "page_id", "created_at", "updated_at",
}  # fmt: skip
INCIDENT_KEYS = {
    "id", "name", "status", "impact", "created_at", "updated_at", "monitoring_at",
    "resolved_at", "started_at", "shortlink", "page_id", "incident_updates", "components",
}  # fmt: skip
UPDATE_KEYS = {
    "id", "incident_id", "status", "body", "created_at", "updated_at", "display_at",
    "affected_components", "deliver_notifications", "custom_tweet", "tweet_id",
}  # fmt: skip
MAINTENANCE_KEYS = INCIDENT_KEYS | {"scheduled_for", "scheduled_until"}
AFFECTED_KEYS = {"code", "name", "old_status", "new_status"}
ID = re.compile(r"^[a-z0-9]{12}$")

API = "/api/v2"
ENDPOINTS = (
    "summary.json",
    "status.json",
    "components.json",
    "incidents.json",
    "incidents/unresolved.json",
    "scheduled-maintenances.json",
    "scheduled-maintenances/upcoming.json",
    "scheduled-maintenances/active.json",
)


@pytest.fixture(scope="module")
def site(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[Scenario, httpx.Client]]:
    sc = scenario(tmp_path_factory.mktemp("status"))
    with serve(status_app(sc.store, PAGE, Clock())) as url, httpx.Client(base_url=url) as client:
        yield sc, client
    sc.store.close()


def get(client: httpx.Client, path: str) -> dict[str, Any]:
    resp = client.get(f"{API}/{path}")
    assert resp.status_code == 200, resp.text
    assert resp.headers["content-type"] == "application/json"
    body: dict[str, Any] = resp.json()
    return body


def is_iso(text: str | None) -> bool:
    """ISO 8601 with an offset, as Statuspage writes its timestamps."""
    return text is not None and datetime.fromisoformat(text).utcoffset() is not None


def test_every_answer_starts_with_the_page_and_allows_cross_origin_reads(
    site: tuple[Scenario, httpx.Client],
) -> None:
    _, client = site
    for path in ENDPOINTS:
        resp = client.get(f"{API}/{path}", headers={"Origin": "https://example.org"})
        assert resp.headers["access-control-allow-origin"] == "*", path
        body = resp.json()
        assert next(iter(body)) == "page", path
        assert set(body["page"]) == PAGE_KEYS, path
        assert body["page"]["id"] == PAGE.id and body["page"]["url"] == PAGE.url
        assert body["page"]["time_zone"] == "Etc/UTC"
        # the last change: the automatic update ten minutes before NOW
        assert datetime.fromisoformat(body["page"]["updated_at"]).timestamp() == NOW - 600


def test_the_summary_has_statuspage_shapes_to_the_last_field(
    site: tuple[Scenario, httpx.Client],
) -> None:
    sc, client = site
    body = get(client, "summary.json")
    assert list(body) == ["page", "components", "incidents", "scheduled_maintenances", "status"]
    assert set(body["status"]) == STATUS_KEYS

    comps = body["components"]
    assert [c["name"] for c in comps] == [s.name for s in SPECS]
    for c in comps:
        expected = COMPONENT_KEYS | ({"components"} if c["group"] else set())
        assert set(c) == expected, c["name"]
        assert ID.match(c["id"]) and c["page_id"] == PAGE.id
        assert is_iso(c["created_at"]) and is_iso(c["updated_at"])
    by_name = {c["name"]: c for c in comps}
    trading = by_name["Trading"]
    assert trading["group"] is True and trading["group_id"] is None
    assert trading["components"] == [
        by_name["XBT/USD trading"]["id"],
        by_name["ETH/USD trading"]["id"],
    ]
    assert by_name["XBT/USD trading"]["group_id"] == trading["id"]
    assert by_name["XBT/USD trading"]["status"] == PARTIAL
    assert by_name["XBT withdrawals"]["status"] == MAINTENANCE
    assert by_name["Website"]["group_id"] is None and by_name["Website"]["group"] is False
    # a group shows its worst child, whatever its own row says
    assert trading["status"] == PARTIAL and by_name["API"]["status"] == "operational"

    [incident] = body["incidents"]  # only the unresolved one
    assert incident["id"] == sc.open_incident
    assert set(incident) == INCIDENT_KEYS
    assert incident["status"] == "identified" and incident["impact"] == "major"
    assert incident["shortlink"] == f"{PAGE.url}/incidents/{sc.open_incident}"
    assert incident["resolved_at"] is None and is_iso(incident["started_at"])
    assert [c["name"] for c in incident["components"]] == ["XBT/USD trading"]
    newest, first = incident["incident_updates"]  # newest first, as Statuspage
    for update in (newest, first):
        assert set(update) == UPDATE_KEYS
        assert update["incident_id"] == sc.open_incident and is_iso(update["created_at"])
    assert newest["status"] == "identified" and first["status"] == "investigating"
    assert "<script>" in first["body"]  # JSON carries the operator's text as written
    [affected] = newest["affected_components"]
    assert set(affected) == AFFECTED_KEYS and affected["new_status"] == PARTIAL

    maints = {m["id"]: m for m in body["scheduled_maintenances"]}
    assert set(maints) == {sc.active_maintenance, sc.upcoming_maintenance}
    for m in maints.values():
        assert set(m) >= MAINTENANCE_KEYS
        assert is_iso(m["scheduled_for"]) and is_iso(m["scheduled_until"])
    assert maints[sc.active_maintenance]["status"] == "in_progress"
    assert maints[sc.upcoming_maintenance]["status"] == "scheduled"


def test_status_and_components_alone(site: tuple[Scenario, httpx.Client]) -> None:
    _, client = site
    body = get(client, "status.json")
    assert list(body) == ["page", "status"]
    # XBT/USD is cancel-only (partial outage) and the open incident's impact is major
    assert body["status"] == {"indicator": "major", "description": "Partial System Outage"}
    body = get(client, "components.json")
    assert list(body) == ["page", "components"]
    assert body["components"] == get(client, "summary.json")["components"]


def test_incident_lists(site: tuple[Scenario, httpx.Client]) -> None:
    sc, client = site
    every = get(client, "incidents.json")["incidents"]
    assert [i["id"] for i in every] == [sc.open_incident, sc.resolved_incident]  # newest first
    resolved = every[1]
    assert resolved["status"] == "postmortem" and is_iso(resolved["resolved_at"])
    assert [u["status"] for u in resolved["incident_updates"]] == ["resolved", "investigating"]
    assert [i["id"] for i in get(client, "incidents/unresolved.json")["incidents"]] == [
        sc.open_incident
    ]


def test_upcoming_and_active_maintenances(site: tuple[Scenario, httpx.Client]) -> None:
    sc, client = site

    def ids(path: str) -> list[str]:
        return [m["id"] for m in get(client, path)["scheduled_maintenances"]]

    assert ids("scheduled-maintenances/upcoming.json") == [sc.upcoming_maintenance]
    assert ids("scheduled-maintenances/active.json") == [sc.active_maintenance]
    assert set(ids("scheduled-maintenances.json")) == {
        sc.upcoming_maintenance,
        sc.active_maintenance,
    }
    for m in get(client, "scheduled-maintenances.json")["scheduled_maintenances"]:
        assert set(m) >= MAINTENANCE_KEYS
        for update in m["incident_updates"]:
            assert set(update) == UPDATE_KEYS
            assert update["status"] in ("scheduled", "in_progress", "verifying", "completed")


def _status_of(store: StatusStore) -> dict[str, str]:
    with serve(status_app(store, PAGE, Clock())) as url:
        return httpx.get(f"{url}{API}/status.json").json()["status"]  # type: ignore[no-any-return]


@pytest.mark.parametrize(
    ("statuses", "expected"),
    [
        ({}, ("none", "All Systems Operational")),
        ({"market:XXBTZUSD": DEGRADED}, ("minor", "Minor Service Outage")),
        ({"market:XXBTZUSD": PARTIAL}, ("major", "Partial System Outage")),
        ({"market:XXBTZUSD": MAJOR, "api:rest": PARTIAL}, ("critical", "Major System Outage")),
        ({"withdrawals:XXBT": MAINTENANCE}, ("maintenance", "Service Under Maintenance")),
        # a group's own row is a summary, never counted
        ({"group:trading": MAJOR}, ("none", "All Systems Operational")),
    ],
)
def test_the_indicator_follows_the_worst_component(
    tmp_path: Path, statuses: dict[str, str], expected: tuple[str, str]
) -> None:
    store = empty_store(tmp_path)
    for key, status in statuses.items():
        store.set_status(key, status, NOW - 60)
    assert _status_of(store) == {"indicator": expected[0], "description": expected[1]}


def test_an_open_incident_raises_the_indicator_and_resolving_it_clears_it(
    tmp_path: Path,
) -> None:
    store = empty_store(tmp_path)
    fields = {"kind": "incident", "name": "Slow fills", "status": "investigating"}
    iid = store.create_incident(fields | {"impact": "minor"}, "Looking.", [], NOW - 60)
    assert _status_of(store) == {"indicator": "minor", "description": "Minor Service Outage"}
    store.add_update(iid, "resolved", "Fixed.", NOW - 30)
    assert _status_of(store) == {"indicator": "none", "description": "All Systems Operational"}


def test_lists_keep_the_50_most_recent(tmp_path: Path) -> None:
    store = empty_store(tmp_path, SPECS[-1:])
    for n in range(55):
        fields = {"kind": "incident", "name": f"incident {n}", "status": "investigating"}
        iid = store.create_incident(fields | {"impact": "none"}, "x", [], NOW - 3600 + n)
        store.add_update(iid, "resolved", "done", NOW - 3600 + n + 0.5)
        fields = {"kind": "maintenance", "name": f"maintenance {n}", "status": "scheduled"}
        store.create_incident(fields | {"impact": "maintenance"}, "x", [], NOW - 3600 + n)
    with serve(status_app(store, PAGE, Clock())) as url, httpx.Client(base_url=url) as client:
        names = [i["name"] for i in get(client, "incidents.json")["incidents"]]
        assert names == [f"incident {n}" for n in range(54, 4, -1)]
        maints = get(client, "scheduled-maintenances.json")["scheduled_maintenances"]
        assert len(maints) == 50 and maints[0]["name"] == "maintenance 54"
        assert get(client, "incidents/unresolved.json")["incidents"] == []


def test_updated_at_moves_with_changes_and_with_the_services_own_checks(tmp_path: Path) -> None:
    store = empty_store(tmp_path)
    clock = Clock()
    with serve(status_app(store, PAGE, clock)) as url, httpx.Client(base_url=url) as client:

        def updated() -> float:
            return datetime.fromisoformat(
                get(client, "status.json")["page"]["updated_at"]
            ).timestamp()

        assert updated() == NOW - 100 * 86_400  # the components' creation, nothing since
        store.set_status("api:rest", DEGRADED, NOW - 5)
        assert updated() == NOW - 5
        store.put("checked_at", NOW - 1)  # the automation's last look at the exchange
        assert updated() == NOW - 1


# ---------------------------------------------------------------------- a real reader
EXPORTER = shutil.which("statuspage-prometheus-exporter", path=str(Path(sys.executable).parent))


@pytest.mark.skipif(EXPORTER is None, reason="statuspage-prometheus-exporter is not installed")
def test_statuspage_prometheus_exporter_reads_our_summary(tmp_path: Path) -> None:
    """statuspage-prometheus-exporter (PyPI), written for Atlassian's pages, polls our
    summary.json once (RUN_MODE=once) and writes its metrics: they must say what the page
    says (the page is degraded, which component is not operational, the open incident
    with its impact and components, the maintenances)."""
    sc = scenario(tmp_path / "store")
    work = tmp_path / "exporter"
    work.mkdir()
    with serve(status_app(sc.store, PageInfo(PAGE.id, PAGE.name, "http://x"), Clock())) as url:
        (work / "services.json").write_text(
            json.dumps({"cambio": {"url": f"{url}{API}/summary.json", "name": "cambio"}})
        )
        env = {
            k: v for k, v in os.environ.items() if not k.startswith(("HTTP_PROXY", "HTTPS_PROXY"))
        }
        env |= {"RUN_MODE": "once", "METRICS_TEXTFILE_PATH": str(work / "out.prom")}
        env |= {"SERVICES_JSON_PATH": str(work / "services.json"), "NO_PROXY": "127.0.0.1"}
        assert EXPORTER is not None
        summary = httpx.get(f"{url}{API}/summary.json").json()
        done = subprocess.run(
            [EXPORTER], cwd=work, env=env, capture_output=True, text=True, timeout=120
        )
    assert done.returncode == 0, done.stderr
    samples = {
        (s.name, tuple(sorted(s.labels.items()))): s.value
        for family in text_string_to_metric_families((work / "out.prom").read_text())
        for s in family.samples
    }

    def value(name: str, **labels: str) -> float:
        matches = [
            v for (n, ls), v in samples.items() if n == name and labels.items() <= dict(ls).items()
        ]
        assert len(matches) == 1, (name, labels, done.stderr[-2000:])
        return matches[0]

    assert value("statuspage_probe_check", service_name="cambio") == 1  # a live answer
    assert value("statuspage_service_status", service_name="cambio") == 0  # not operational
    for comp in summary["components"]:
        up = 1 if comp["status"] == "operational" else 0
        assert value("statuspage_component_status", component_name=comp["name"]) == up
    assert value("statuspage_component_status", component_name="XBT/USD trading") == 0
    assert (
        value(
            "statuspage_incident_info",
            incident_id=sc.open_incident,
            impact="major",
            affected_components="XBT/USD trading",
            incident_name="XBT/USD is cancel-only",
        )
        == 1
    )
    for mid in (sc.active_maintenance, sc.upcoming_maintenance):
        assert value("statuspage_maintenance_info", maintenance_id=mid) == 1
