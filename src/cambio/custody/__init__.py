"""Custody: where the exchange's coins actually are.

`adapter` is the interface a custody backend implements (deposit addresses, incoming
transactions with their confirmations, payouts idempotent by withdrawal id); `simchain`
is a simulated chain backend for the embedded default and tests; `worker` moves funds
between custody and the engine's ledger as journaled commands; `reconcile` checks that
the two agree (part of ``cambio verify``).
"""
