"""Kraken API errors: raised anywhere in a handler, answered as ``{"error": [...]}``."""

from __future__ import annotations


class KrakenError(Exception):
    def __init__(self, *errors: str) -> None:
        super().__init__(*errors)
        self.errors = list(errors)
