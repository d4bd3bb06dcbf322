"""Hypothesis profiles for the engine's property suites.

``ci`` (the default) keeps the whole suite well under a minute; ``thorough`` runs far more
examples for a local soak. Pick one with ``HYPOTHESIS_PROFILE=thorough pytest tests``.
"""

from __future__ import annotations

import os

from hypothesis import HealthCheck, settings

_COMMON = {
    "deadline": None,
    "suppress_health_check": [HealthCheck.too_slow, HealthCheck.data_too_large],
}
settings.register_profile("ci", max_examples=100, **_COMMON)  # type: ignore[arg-type]
settings.register_profile("thorough", max_examples=2_000, **_COMMON)  # type: ignore[arg-type]
settings.load_profile(os.environ.get("HYPOTHESIS_PROFILE", "ci"))
