"""Benchmark suites for ``edgeinf bench``; one module per suite."""
