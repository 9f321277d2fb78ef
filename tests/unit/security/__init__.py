"""Tests of ``tasks.security``."""
