"""Benchmarks, not run by the tests: ``python -m bench.overhead``, ``python -m bench.cluster``.

A package so that both benchmarks, and the uvicorn processes they start (with the
repository root on ``PYTHONPATH``), import their shared parts by one name.
"""
