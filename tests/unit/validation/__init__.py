"""Tests of ``tasks.validation``."""
