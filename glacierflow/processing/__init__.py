"""Processing provider: one small module per algorithm (parameters -> core call -> outputs)."""
