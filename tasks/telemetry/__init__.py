"""Logs, their fields, and the redaction of secrets from them."""
