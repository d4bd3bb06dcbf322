"""The status page's HTML, its uptime arithmetic, the subscription routes and the Atom and
RSS feeds, against a real server on loopback."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, date, datetime
from html.parser import HTMLParser
from pathlib import Path
from typing import Any

import feedparser  # type: ignore[import-untyped]
import httpx
import pytest
from test_web_support import DAY, NOW, PAGE, SCRIPT, Clock, Scenario, empty_store, scenario, serve

from cambio.status.model import DEGRADED, MAINTENANCE, MAJOR, OPERATIONAL, PARTIAL
from cambio.status.web import status_app
from cambio.status.web.pages import ago, plausible_email
from cambio.status.web.uptime import DOWN_WEIGHT, percent_text, uptime, window

MIDNIGHT = datetime(2026, 11, 24, tzinfo=UTC).timestamp()


# ---------------------------------------------------------------------- uptime
def test_the_weights_are_the_documented_ones() -> None:
    assert DOWN_WEIGHT == {
        MAJOR: 1.0,
        PARTIAL: 0.3,
        DEGRADED: 0.0,
        MAINTENANCE: 0.0,
        OPERATIONAL: 0.0,
    }


def test_uptime_of_a_component_that_never_failed() -> None:
    start, end = MIDNIGHT - 2 * DAY, MIDNIGHT + DAY
    percent, days = uptime([(OPERATIONAL, start - 10 * DAY)], start, end)
    assert percent == 100.0
    assert [d.day for d in days] == [date(2026, 11, 22), date(2026, 11, 23), date(2026, 11, 24)]
    assert [d.level for d in days] == ["ok", "ok", "ok"]
    assert all(d.observed_s == DAY for d in days)


def test_uptime_weighs_each_status() -> None:
    """One day each of: a 60-minute major outage, a 100-minute partial outage, 5 hours
    degraded, 2 hours of maintenance; then a clean day."""
    d0 = MIDNIGHT - 4 * DAY
    history = [
        (OPERATIONAL, d0),
        (MAJOR, d0 + 3600),
        (OPERATIONAL, d0 + 7200),
        (PARTIAL, d0 + DAY),
        (OPERATIONAL, d0 + DAY + 6000),
        (DEGRADED, d0 + 2 * DAY),
        (OPERATIONAL, d0 + 2 * DAY + 5 * 3600),
        (MAINTENANCE, d0 + 3 * DAY),
        (OPERATIONAL, d0 + 3 * DAY + 7200),
    ]
    percent, days = uptime(history, d0, d0 + 5 * DAY)
    down = 3600 + 0.3 * 6000  # major fully, partial at 0.3, degraded and maintenance 0
    assert percent == pytest.approx(100 * (1 - down / (5 * DAY)))
    major, partial, degraded, maint, clean = days
    assert major.down_s == 3600 and major.level == "major" and major.worst == MAJOR
    assert partial.down_s == pytest.approx(1800) and partial.level == "major"  # 30 min
    assert degraded.down_s == 0 and degraded.level == "minor"
    assert maint.down_s == 0 and maint.maintenance_s == 7200 and maint.level == "maint"
    assert clean.level == "ok" and clean.percent == 100.0
    assert major.title == "20 Nov 2026: 60 min down, 95.83 % up"
    assert maint.title == "23 Nov 2026: 0 min down, 2 h maintenance, 100.00 % up"
    assert degraded.title == "22 Nov 2026: 0 min down, 5 h degraded, 100.00 % up"


def test_a_short_outage_is_orange_and_a_long_one_red() -> None:
    history = [(OPERATIONAL, MIDNIGHT), (MAJOR, MIDNIGHT + 600), (OPERATIONAL, MIDNIGHT + 720)]
    _, [day] = uptime(history, MIDNIGHT, MIDNIGHT + DAY)
    assert day.down_s == 120 and day.level == "partial"
    history = [(OPERATIONAL, MIDNIGHT), (PARTIAL, MIDNIGHT + 600), (OPERATIONAL, MIDNIGHT + 6600)]
    _, [day] = uptime(history, MIDNIGHT, MIDNIGHT + DAY)
    assert day.down_s == pytest.approx(1800) and day.level == "major"  # 100 min x 0.3


def test_an_outage_over_midnight_counts_on_both_days() -> None:
    history = [(OPERATIONAL, 0.0), (MAJOR, MIDNIGHT - 1800), (OPERATIONAL, MIDNIGHT + 1800)]
    _, days = uptime(history, MIDNIGHT - DAY, MIDNIGHT + DAY)
    assert [d.down_s for d in days] == [1800, 1800]


def test_time_without_history_is_no_data_not_uptime() -> None:
    """A component created 12 hours into the window: the days before are "no data" and
    the percentage is over the time it existed."""
    start = MIDNIGHT - 2 * DAY
    created = MIDNIGHT - DAY / 2
    history = [(OPERATIONAL, created), (MAJOR, MIDNIGHT), (OPERATIONAL, MIDNIGHT + 3600)]
    percent, days = uptime(history, start, MIDNIGHT + DAY / 2)
    assert [d.level for d in days] == ["nodata", "ok", "major"]
    assert days[0].percent is None and days[0].title.endswith("no data")
    assert percent == pytest.approx(100 * (1 - 3600 / DAY))
    assert uptime([], start, MIDNIGHT)[0] is None


def test_the_window_is_90_utc_days_up_to_now() -> None:
    start, end = window(NOW, 90)
    assert end == NOW
    assert datetime.fromtimestamp(start, UTC) == datetime(2026, 8, 27, tzinfo=UTC)
    assert len(uptime([(OPERATIONAL, 0.0)], start, end)[1]) == 90


def test_percent_never_rounds_downtime_away() -> None:
    assert percent_text(99.99999) == "99.99 %"
    assert percent_text(100.0) == "100.00 %"
    assert percent_text(None) == "no data"


def test_small_helpers() -> None:
    assert ago(42) == "42 seconds ago" and ago(1) == "1 second ago"
    assert ago(600) == "10 minutes ago" and ago(3 * 86_400) == "3 days ago"
    assert plausible_email("ops@example.org")
    for bad in ("", "ops", "ops@", "@example.org", "a b@example.org", "<x>@example.org", "a@b"):
        assert not plausible_email(bad), bad


# ---------------------------------------------------------------------- the page
class Outline(HTMLParser):
    """What a reader sees, in parts: texts by element id, the bars of each component,
    and every external reference (there must be none)."""

    def __init__(self) -> None:
        super().__init__()
        self.stack: list[tuple[str, str | None]] = []
        self.text: dict[str, list[str]] = {}
        self.bars: dict[str, list[str]] = {}
        self.refs: list[str] = []
        self.links: list[dict[str, str | None]] = []
        self.tags: list[str] = []

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        a = dict(attrs)
        self.tags.append(tag)
        if tag == "link":
            self.links.append(a)
        for key in ("src", "href", "action"):
            if a.get(key):
                self.refs.append(str(a[key]))
        if tag == "span" and self.stack and self.stack[-1][0] == "bars":
            owner = next(i for t, i in reversed(self.stack) if i and i.startswith("component-"))
            self.bars.setdefault(owner, []).append(str(a.get("class")))
        if tag in ("meta", "link", "input", "br"):
            return
        cls = a.get("class") or ""
        self.stack.append(("bars" if "bars" in cls.split() else tag, a.get("id")))

    def handle_endtag(self, tag: str) -> None:
        if tag not in ("meta", "link", "input", "br") and self.stack:
            self.stack.pop()

    def handle_data(self, data: str) -> None:
        for _, ident in self.stack:
            if ident:
                self.text.setdefault(ident, []).append(data)

    def of(self, ident: str) -> str:
        return " ".join(" ".join(self.text.get(ident, [])).split())


def outline(html: str) -> Outline:
    parser = Outline()
    parser.feed(html)
    return parser


@pytest.fixture(scope="module")
def site(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[Scenario, httpx.Client]]:
    sc = scenario(tmp_path_factory.mktemp("status"))
    with serve(status_app(sc.store, PAGE, Clock())) as url, httpx.Client(base_url=url) as client:
        yield sc, client
    sc.store.close()


def test_the_page_shows_status_components_and_uptime_bars(
    site: tuple[Scenario, httpx.Client],
) -> None:
    sc, client = site
    resp = client.get("/")
    assert resp.status_code == 200 and resp.headers["content-type"].startswith("text/html")
    page = outline(resp.text)
    assert page.of("status") == "Partial System Outage"
    for comp in sc.store.components():
        ident = f"group-{comp['id']}" if comp["is_group"] else f"component-{comp['id']}"
        assert comp["name"] in page.of(ident), comp["name"]
    xbt = sc.component("market:XXBTZUSD")["id"]
    assert "Partial outage" in page.of(f"component-{xbt}")
    assert "Under maintenance" in page.of(f"component-{sc.component('withdrawals:XXBT')['id']}")
    # a group shows its worst child
    assert "Partial outage" in page.of(f"group-{sc.component('group:trading')['id']}")
    # 90 bars per component, oldest first: XBT/USD's history is on them
    assert set(map(len, page.bars.values())) == {90}
    assert len(page.bars) == 5  # every component that is not a group
    bars = page.bars[f"component-{xbt}"]
    assert bars[-1] == "partial"  # today: cancel-only for 30 minutes
    assert bars[-4] == "major"  # three days ago: 60 minutes down
    assert bars[-6] == "major"  # five days ago: 100 minutes partial = 30 weighted minutes
    assert bars[-11] == "maint"  # ten days ago: maintenance, not downtime
    assert bars.count("ok") == 86
    # 60 + 0.3 x 100 + 0.3 x 30 minutes down over the 89.5 days observed
    assert "99.92 % uptime" in page.of(f"component-{xbt}")
    assert "100.00 % uptime" in page.of(f"component-{sc.component('website')['id']}")


def test_the_page_shows_the_incident_timeline_with_operator_text_escaped(
    site: tuple[Scenario, httpx.Client],
) -> None:
    sc, client = site
    html = client.get("/").text
    assert SCRIPT not in html and "<script" not in html  # no JavaScript at all, and ...
    assert "&lt;script&gt;alert(&#39;owned&#39;)&lt;/script&gt;" in html  # ... text stays text
    page = outline(html)
    card = page.of(f"incident-{sc.open_incident}")
    assert card.startswith("XBT/USD is cancel-only")
    assert "Next update by 12:20 UTC" in card
    assert "Affects: XBT/USD trading" in card
    # the timeline, newest first; only the automatic update says so
    newest = card.index("Identified 24 Nov 2026, 11:50 UTC automatic update Still cancel-only")
    first = card.index(
        f"Investigating 24 Nov 2026, 11:30 UTC The volatility breaker tripped. {SCRIPT}"
    )
    assert newest < first and card.count("automatic update") == 1
    assert "XBT/USD trading: Operational → Partial outage" in card


def test_the_page_shows_maintenances_history_and_freshness(
    site: tuple[Scenario, httpx.Client],
) -> None:
    sc, client = site
    page = outline(client.get("/").text)
    active = page.of(f"maintenance-{sc.active_maintenance}")
    assert "Wallet upgrade" in active and "Next update by 12:15 UTC" in active
    assert "Scheduled 24 Nov 2026, 11:45 UTC – expected end 24 Nov 2026, 12:45 UTC" in active
    assert "In progress" in active and "Affects: XBT withdrawals" in active
    upcoming = page.of(f"maintenance-{sc.upcoming_maintenance}")
    assert "Scheduled 26 Nov 2026, 12:00 UTC – expected end 26 Nov 2026, 13:00 UTC" in upcoming
    assert "trading pauses for under a second" in upcoming
    history = page.of("history")
    assert history.startswith("Past incidents 24 Nov 2026")
    assert "22 Nov 2026 Deposits delayed Postmortem All deposits credited." in history
    assert "23 Nov 2026 No incidents reported." in history
    assert "11 Nov 2026" in history and "10 Nov 2026" not in history  # 14 days
    assert "Engine upgrade" not in history  # not started: upcoming, not history
    assert page.of("freshness") == "Last updated 24 Nov 2026, 11:50 UTC (10 minutes ago)"


def test_the_page_needs_nothing_from_elsewhere(site: tuple[Scenario, httpx.Client]) -> None:
    _, client = site
    html = client.get("/").text
    page = outline(html)
    assert all(ref.startswith("/") or ref.startswith("#") for ref in page.refs), page.refs
    assert "script" not in page.tags and "img" not in page.tags
    assert 'name="viewport" content="width=device-width, initial-scale=1"' in html
    feeds = {
        (link.get("type"), link.get("href")) for link in page.links if link["rel"] == "alternate"
    }
    assert feeds == {
        ("application/atom+xml", "/history.atom"),
        ("application/rss+xml", "/history.rss"),
    }
    assert "<details open" in html  # groups fold


def test_the_freshness_counts_seconds(tmp_path: Path) -> None:
    store = empty_store(tmp_path)
    clock = Clock(NOW)
    store.set_status("api:rest", DEGRADED, NOW - 42)
    with serve(status_app(store, PAGE, clock)) as url:
        assert outline(httpx.get(url).text).of("freshness").endswith("(42 seconds ago)")
        clock.now += 60
        assert outline(httpx.get(url).text).of("freshness").endswith("(102 seconds ago)")


def test_an_incident_page_with_its_postmortem(site: tuple[Scenario, httpx.Client]) -> None:
    sc, client = site
    page = outline(client.get(f"/incidents/{sc.resolved_incident}").text)
    card = page.of(f"incident-{sc.resolved_incident}")
    assert card.startswith("Deposits delayed Postmortem")
    assert card.index("Resolved 22 Nov 2026, 13:00 UTC All deposits credited.") < card.index(
        "Investigating 22 Nov 2026, 12:00 UTC Deposits are slow to credit."
    )
    assert "Next update" not in card
    assert page.of("postmortem") == (
        "Postmortem Published 23 Nov 2026, 12:00 UTC A node fell behind. We added a second one."
    )
    # an open incident has no postmortem yet, and an unknown one is not found
    open_page = outline(client.get(f"/incidents/{sc.open_incident}").text)
    assert "postmortem" not in open_page.text
    assert "Next update by 12:20 UTC" in open_page.of(f"incident-{sc.open_incident}")
    missing = client.get("/incidents/nosuchthing1")
    assert missing.status_code == 404 and "no incident" in missing.text
    assert client.get("/healthz").text == "ok"


# ---------------------------------------------------------------------- subscriptions
def test_subscribing_confirming_and_unsubscribing(tmp_path: Path) -> None:
    calls: list[tuple[str, str, float]] = []
    tokens = {"good"}

    def subscribe(email: str, now: float) -> dict[str, Any]:
        if email.endswith("@refused.example"):
            raise ValueError("We cannot send mail to that domain.")
        calls.append(("subscribe", email, now))
        return {"target": email}

    def by_token(name: str) -> Any:
        def call(token: str, now: float) -> dict[str, str] | None:
            calls.append((name, token, now))
            return {"token": token} if token in tokens else None

        return call

    store = empty_store(tmp_path)
    clock = Clock(NOW + 5)
    app = status_app(store, PAGE, clock, subscribe, by_token("confirm"), by_token("unsubscribe"))
    with serve(app) as url, httpx.Client(base_url=url) as client:
        form = outline(client.get("/").text)
        assert "/subscribe" in form.refs
        ok = client.post("/subscribe", data={"email": " ops@example.org "})
        assert ok.status_code == 200 and "We sent a link to ops@example.org" in ok.text
        assert calls == [("subscribe", "ops@example.org", NOW + 5)]

        bad = client.post("/subscribe", data={"email": "not an address"})
        assert bad.status_code == 400 and 'value="not an address"' in bad.text
        refused = client.post("/subscribe", data={"email": "x@refused.example"})
        assert refused.status_code == 400 and "cannot send mail to that domain" in refused.text
        huge = client.post("/subscribe", data={"email": "a" * 5000 + "@example.org"})
        assert huge.status_code == 413
        assert len(calls) == 1  # none of those reached the notifier

        calls.clear()
        assert client.get("/subscriptions/confirm/good").status_code == 200
        assert client.get("/subscriptions/confirm/bad").status_code == 404
        assert "Unsubscribed" in client.get("/subscriptions/unsubscribe/good").text
        assert client.post("/subscriptions/unsubscribe/good").status_code == 200
        assert client.get("/subscriptions/unsubscribe/bad").status_code == 404
        assert calls == [
            ("confirm", "good", NOW + 5),
            ("confirm", "bad", NOW + 5),
            ("unsubscribe", "good", NOW + 5),
            ("unsubscribe", "good", NOW + 5),
            ("unsubscribe", "bad", NOW + 5),
        ]


def test_without_callbacks_there_is_no_form_and_no_route(tmp_path: Path) -> None:
    with serve(status_app(empty_store(tmp_path), PAGE, Clock())) as url:
        assert 'action="/subscribe"' not in httpx.get(url).text
        assert httpx.post(f"{url}/subscribe", data={"email": "a@b.co"}).status_code in (404, 405)
        assert httpx.get(f"{url}/subscriptions/confirm/x").status_code == 404


# ---------------------------------------------------------------------- feeds
def test_the_feeds_carry_every_update_newest_first(site: tuple[Scenario, httpx.Client]) -> None:
    sc, client = site
    updates = sc.store.all_updates()
    assert len(updates) == 7
    atom = client.get("/history.atom")
    rss = client.get("/history.rss")
    assert atom.headers["content-type"] == "application/atom+xml"
    assert rss.headers["content-type"] == "application/rss+xml"
    for resp, version in ((atom, "atom10"), (rss, "rss20")):
        feed = feedparser.parse(resp.content)
        assert not feed.bozo, feed.get("bozo_exception")
        assert feed.version == version
        assert feed.feed.title == "cambio status: history"
        assert len(feed.entries) == 7
        times = [e.published_parsed for e in feed.entries]
        assert times == sorted(times, reverse=True)
        for entry, (incident, update) in zip(feed.entries, updates, strict=True):
            assert entry.link == f"{PAGE.url}/incidents/{incident['id']}"
            assert entry.id == f"{entry.link}#update-{update['id']}"
            assert entry.title.startswith(f"{incident['name']}: ")
        first = feed.entries[0]
        assert first.title == "XBT/USD is cancel-only: Identified"
        assert "(automatic update)" in first.summary
        # the operator's <script> is text inside the entry's HTML, never markup
        script = next(e for e in feed.entries if "breaker" in e.summary)
        assert "&lt;script&gt;" in script.summary and "<script" not in script.summary
    assert feedparser.parse(atom.content).feed.updated == "2026-11-24T11:50:00.000+00:00"


def test_feeds_of_an_empty_store_are_valid(tmp_path: Path) -> None:
    with serve(status_app(empty_store(tmp_path), PAGE, Clock())) as url:
        for path in ("/history.atom", "/history.rss"):
            feed = feedparser.parse(httpx.get(f"{url}{path}").content)
            assert not feed.bozo and feed.entries == []


def test_outline_reads_the_bars() -> None:
    """The test's own HTML reader, on a known snippet (so its findings can be trusted)."""
    page = outline(
        '<div id="component-a"><div class="bars"><span class="ok"></span>'
        '<span class="major"></span></div><p>A</p></div>'
    )
    assert page.bars == {"component-a": ["ok", "major"]} and page.of("component-a") == "A"
