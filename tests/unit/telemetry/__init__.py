"""Tests of ``tasks.telemetry``."""
