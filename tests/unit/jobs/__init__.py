"""Tests of ``tasks.jobs``."""
