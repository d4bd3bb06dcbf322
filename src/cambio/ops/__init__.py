"""Operations: invariant checks and monitors over the exchange's real state."""
