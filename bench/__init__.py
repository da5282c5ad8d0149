"""Benchmarks, the demo and its map rendering (not part of the installed plugin)."""
