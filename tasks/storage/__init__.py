"""Redis: the key schema, the store's operations and sync adapter, batches, leases, states, keys, counters."""
