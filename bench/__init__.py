"""Benchmarks, not run by the tests: ``python -m bench.overhead``, ``python -m bench.cluster``,
``python -m bench.workers``.

A package so that the benchmarks, and the uvicorn and gunicorn processes they start
(with the repository root on ``PYTHONPATH``), import their shared parts by one name.
"""
