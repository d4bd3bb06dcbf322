"""The history feeds, `/history.atom` (Atom 1.0, RFC 4287) and `/history.rss` (RSS 2.0),
at Statuspage's paths: one entry per update of an incident or maintenance, newest first.

Built with the standard library's ElementTree: two small fixed documents do not need a
feed library, and ElementTree escapes every text and attribute, so operator text cannot
break the XML. An entry's content is a little HTML (the status in bold, then the body,
HTML-escaped), as Statuspage's own feeds carry; readers show it formatted.
"""

from __future__ import annotations

import html
from collections.abc import Callable
from datetime import UTC, datetime
from email.utils import format_datetime
from xml.etree import ElementTree as ET

from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from cambio.status.model import PageInfo, iso, words
from cambio.status.store import Row, StatusStore
from cambio.status.web.api import incident_url, last_change

ATOM_NS = "http://www.w3.org/2005/Atom"
ENTRIES = 100  # the most recent updates a feed carries
ET.register_namespace("atom", ATOM_NS)  # RSS's atom:link (the Atom feed is unprefixed)

Entry = tuple[Row, Row]  # (incident {id, name, kind}, update)


def _base(page: PageInfo) -> str:
    return page.url.rstrip("/")


def _words(status: str) -> str:
    return words(status)


def _title(incident: Row, update: Row) -> str:
    return f"{incident['name']}: {_words(update['status'])}"


def _content(update: Row) -> str:
    words = _words(update["status"])
    auto = " (automatic update)" if update.get("automatic") else ""
    return (
        f"<p><strong>{html.escape(words)}</strong>{auto} - "
        f"{html.escape(update['body']).replace(chr(10), '<br>')}</p>"
    )


def sub(parent: ET.Element, tag: str, text: str | None = None, **attrs: str) -> ET.Element:
    el = ET.SubElement(parent, tag, attrs)
    el.text = text
    return el


def _xml(root: ET.Element) -> bytes:
    out: bytes = ET.tostring(root, encoding="utf-8", xml_declaration=True)
    return out


def atom(page: PageInfo, entries: list[Entry], updated: float) -> bytes:
    # unprefixed names under a literal default namespace declaration: ElementTree would
    # otherwise write ns0:feed (valid, but not what feed validators like to see)
    feed = ET.Element("feed", {"xmlns": ATOM_NS, "xml:lang": "en"})
    sub(feed, "id", f"{_base(page)}/history")
    sub(feed, "title", f"{page.name}: history")
    sub(feed, "updated", iso(updated))
    sub(feed, "link", rel="self", type="application/atom+xml", href=f"{_base(page)}/history.atom")
    sub(feed, "link", rel="alternate", type="text/html", href=f"{_base(page)}/")
    author = sub(feed, "author")
    sub(author, "name", page.name)
    for incident, update in entries:
        url = incident_url(page, incident["id"])
        entry = sub(feed, "entry")
        # an update never changes, so its URL with the update's id is a stable entry id
        sub(entry, "id", f"{url}#update-{update['id']}")
        sub(entry, "title", _title(incident, update))
        sub(entry, "published", iso(update["created_at"]))
        sub(entry, "updated", iso(update["created_at"]))
        sub(entry, "link", rel="alternate", type="text/html", href=url)
        sub(entry, "content", _content(update), type="html")
    return _xml(feed)


def rss(page: PageInfo, entries: list[Entry], updated: float) -> bytes:
    root = ET.Element("rss", {"version": "2.0"})
    channel = sub(root, "channel")
    sub(channel, "title", f"{page.name}: history")
    sub(channel, "link", f"{_base(page)}/")
    sub(channel, "description", f"Incidents and maintenance of {page.name}")
    sub(channel, "language", "en")
    sub(channel, "lastBuildDate", _rfc822(updated))
    # RSS has no self link of its own; the Atom one is what validators ask for
    sub(
        channel,
        f"{{{ATOM_NS}}}link",
        rel="self",
        type="application/rss+xml",
        href=f"{_base(page)}/history.rss",
    )
    for incident, update in entries:
        url = incident_url(page, incident["id"])
        item = sub(channel, "item")
        sub(item, "title", _title(incident, update))
        sub(item, "link", url)
        sub(item, "description", _content(update))
        sub(item, "pubDate", _rfc822(update["created_at"]))
        sub(item, "guid", f"{url}#update-{update['id']}", isPermaLink="false")
    return _xml(root)


def _rfc822(ts: float) -> str:
    return format_datetime(datetime.fromtimestamp(ts, UTC), usegmt=True)


def routes(store: StatusStore, page: PageInfo, clock: Callable[[], float]) -> list[Route]:
    def read() -> tuple[list[Entry], float]:
        entries = store.all_updates(limit=ENTRIES)
        return entries, last_change(store, clock())

    def atom_feed(_: Request) -> Response:
        entries, updated = read()
        return Response(atom(page, entries, updated), media_type="application/atom+xml")

    def rss_feed(_: Request) -> Response:
        entries, updated = read()
        return Response(rss(page, entries, updated), media_type="application/rss+xml")

    return [Route("/history.atom", atom_feed), Route("/history.rss", rss_feed)]
