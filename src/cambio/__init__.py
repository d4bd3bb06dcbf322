"""cambio: an open-source, deterministic, journal-driven cryptocurrency exchange.

State is a pure function of the journal: every input is a sequenced command, the engine
(cambio.engine) applies commands in order and emits events, and everything else is built
from those events. See README.md and docs/architecture.md.
"""

__version__ = "0.1.0"
