"""Tests of one module or package at a time, against the session's real Redis where they store anything."""
