"""The auth flows: one module per flow, plus the lookups and the outcome they share."""
