"""Engine upgrades: rehearse a candidate build on production's journal, shadow, cut over,
roll back (see docs/runbook-upgrade.md)."""
