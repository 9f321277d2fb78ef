"""Redis: the key schema, the stores, atomic batches, leases, states, API keys, job counters."""
