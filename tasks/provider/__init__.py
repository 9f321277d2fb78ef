"""Talking to providers: the outbound transport and guard, rate limits and pools, TLS, certificates."""
