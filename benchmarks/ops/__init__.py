"""Kernel benchmarks, one op family per file (cases for python -m benchmarks), and per_call.py."""
