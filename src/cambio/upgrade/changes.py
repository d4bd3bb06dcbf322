"""Intended behaviour changes a candidate declares, so a rehearsal can tell them apart
from bugs.

A candidate ships ``intended_changes.toml`` in its cambio package::

    [[change]]
    name = "taker fee rounds up"
    description = "Taker fees round up to the next unit (was: half-even), from 0.2.0."
    events = ["trade"]           # the event kinds it may alter (their tags)
    fields = ["taker_fee"]       # the fields that may differ

A divergence is *declared* when the recorded and the replayed events are the same kinds
in the same order and every difference is in a declared field of a declared kind. Those
are counted per change and shown in the report, never silently accepted; anything else
stops the rehearsal. A change that alters later state (balances, fills) must declare the
fields that carries into too: the rule is deliberately literal.
"""

from __future__ import annotations

import tomllib
from dataclasses import dataclass
from typing import Any

import msgspec

from cambio.model.events import Event
from cambio.runtime.replay import Mismatch


class Change(msgspec.Struct, forbid_unknown_fields=True):
    name: str
    events: list[str]
    fields: list[str]
    description: str = ""


class _File(msgspec.Struct, forbid_unknown_fields=True):
    change: list[Change] = []


class ChangesError(Exception):
    """The candidate's intended_changes.toml cannot be read."""


def load(text: str | None) -> list[Change]:
    if not text:
        return []
    try:
        return msgspec.convert(tomllib.loads(text), _File).change
    except (tomllib.TOMLDecodeError, msgspec.ValidationError) as exc:
        raise ChangesError(f"intended_changes.toml: {exc}") from None


def tag(ev: Event) -> str:
    return str(ev.__struct_config__.tag)


def fields_of(value: msgspec.Struct) -> dict[str, Any]:
    """An event's or a command's fields by name (they travel as arrays)."""
    return {f: getattr(value, f) for f in value.__struct_fields__}


def explain(m: Mismatch, changes: list[Change]) -> Change | None:
    """The declared change that accounts for every difference in `m`, if one does."""
    if len(m.recorded) != len(m.replayed):
        return None
    if any(tag(a) != tag(b) for a, b in zip(m.recorded, m.replayed, strict=True)):
        return None
    differing = [
        (tag(a), {f for f, v in fields_of(a).items() if fields_of(b).get(f) != v})
        for a, b in zip(m.recorded, m.replayed, strict=True)
        if a != b
    ]
    for change in changes:
        if all(kind in change.events and diff <= set(change.fields) for kind, diff in differing):
            return change
    return None


@dataclass
class Declared:
    """How often a declared change accounted for a difference, and where first."""

    change: Change
    count: int = 0
    first: Mismatch | None = None


class Judge:
    """A replay's mismatch judge: counts the mismatches a declared change accounts for
    (go on) and refuses the others (stop)."""

    def __init__(self, changes: list[Change]) -> None:
        self.changes = changes
        self.declared = {c.name: Declared(c) for c in changes}

    def __call__(self, m: Mismatch) -> bool:
        change = explain(m, self.changes)
        if change is None:
            return False
        declared = self.declared[change.name]
        declared.count += 1
        declared.first = declared.first or m
        return True

    @property
    def total(self) -> int:
        return sum(d.count for d in self.declared.values())
