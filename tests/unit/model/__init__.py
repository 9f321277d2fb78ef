"""Tests of ``tasks.model``."""
