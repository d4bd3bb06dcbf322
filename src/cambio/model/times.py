"""Instants at the edges: an operator's ISO time (which must name its zone), and the
engine's nanoseconds shown as ISO text."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

NOT_ISO = "an ISO time with its zone"


def zoned(text: str) -> datetime:
    """An ISO time that names its zone (an operator's "02:00" is ambiguous); ValueError
    saying which is wrong."""
    try:
        when = datetime.fromisoformat(text)
    except ValueError:
        raise ValueError(NOT_ISO) from None
    if when.tzinfo is None:
        raise ValueError("give the time zone (Z or +hh:mm)")
    return when


def iso_ns(ns: int) -> str:
    """An instant (ns since the epoch) in ISO form, UTC, exactly to the microsecond."""
    seconds, rest = divmod(ns, 1_000_000_000)
    return (datetime.fromtimestamp(seconds, UTC) + timedelta(microseconds=rest // 1000)).isoformat()
