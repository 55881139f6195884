"""Benchmarks (not tests): speed is measured here and written to docs/PERFORMANCE.md."""
