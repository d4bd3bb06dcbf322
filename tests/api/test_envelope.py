"""Kraken's envelope, and what a halted exchange answers on every API."""

from __future__ import annotations

import json

from cambio.api.envelope import error, halted, ok
from cambio.runtime.sequencer import OutcomeUnknown, SequencerStopped


def test_envelope_shapes_and_status() -> None:
    assert json.loads(ok({"a": 1}).body) == {"error": [], "result": {"a": 1}}
    refused = error("EAPI:Invalid key")
    assert refused.status_code == 200 and json.loads(refused.body) == {
        "error": ["EAPI:Invalid key"]
    }


def test_a_halt_says_whether_the_command_was_journaled() -> None:
    assert halted(SequencerStopped("stopping")) == ["EService:Unavailable"]
    assert halted(OutcomeUnknown("halted")) == [
        "EService:Unavailable",
        "EGeneral:Outcome unknown:journaled",
    ]
