"""The deterministic core: order books, matching, accounts, fees and modes.

``Exchange(config).apply(command) -> events`` is the whole interface; the engine never
reads a clock, the network, the disk or a random source, and computes only with integers.
It imports nothing from cambio but ``cambio.model``.
"""

from cambio.engine.exchange import Exchange
from cambio.engine.snapshot import SnapshotError

__all__ = ["Exchange", "SnapshotError"]
