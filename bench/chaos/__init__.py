"""Chaos runs with figures (``make chaos``, ``python -m bench.chaos``): faults injected
into real clusters on namespace hosts (kills, partitions, loss and delay, stopped
peers, session floods) and seeded schedules on the in-memory network.
See docs/reliability.md for the figures and the commands."""
