"""Secrets at rest: sealing, the start-up key check, key rotation."""
