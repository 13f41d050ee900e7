"""Sweeps and probes behind notes in QUALITY.md and BENCHMARKS.md."""
