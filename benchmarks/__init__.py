"""Benchmarks, run on their own (never part of the test run)."""
