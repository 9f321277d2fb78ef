"""Tests of ``tasks.provider``."""
