"""Comparing runs: array error statistics, one detection matcher, and two detectors over frames."""
