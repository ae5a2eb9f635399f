"""Benchmarks: ``python -m bench.<area>`` (each prints ratios against a baseline)."""
