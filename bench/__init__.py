"""Benchmarks and calibration tools (not part of the installed package)."""
