"""Hypothesis profiles for the fuzz tests: a quick, repeatable run in CI, a long one on demand.

``ci`` (the default): few examples per decoder, derandomized (the same examples on
every run, so CI cannot flake), no deadline (a loaded machine is not a bug), no
example database left behind. ``long``: ``make fuzz`` (``FUZZ_PROFILE=long``), many
random examples; a failure is kept in ``.hypothesis/`` and replayed first next time.
"""

from __future__ import annotations

import os

from hypothesis import HealthCheck, settings

settings.register_profile(
    "ci",
    max_examples=50,
    derandomize=True,
    deadline=None,
    database=None,
    suppress_health_check=[HealthCheck.too_slow],
)
settings.register_profile(
    "long",
    max_examples=int(os.environ.get("FUZZ_EXAMPLES", "20000")),
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow],
)
settings.load_profile(os.environ.get("FUZZ_PROFILE", "ci"))
