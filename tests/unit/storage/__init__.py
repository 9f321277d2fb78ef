"""Tests of ``tasks.storage``."""
