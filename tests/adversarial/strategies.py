"""Shared Hypothesis settings and strategies of the fuzzing tests.

`make test` runs the `security` profile: 200 examples per property, derandomized so CI runs
are reproducible. `HYPOTHESIS_PROFILE=deep` runs 5000 random examples per property.
"""

from __future__ import annotations

import os

from hypothesis import HealthCheck, settings
from hypothesis import strategies as st

settings.register_profile(
    "security",
    max_examples=200,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
    derandomize=True,
)
settings.register_profile(
    "deep",
    max_examples=5000,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
_PROFILE = "deep" if os.environ.get("HYPOTHESIS_PROFILE") == "deep" else "security"
fuzz = settings(settings.get_profile(_PROFILE))
"""Decorator applying the active profile (function-scoped fixtures are reused on purpose)."""


# Cheap to draw: a fixed menu of wrong types. `json_values` adds arbitrary nesting.
junk = st.sampled_from(
    [None, True, False, 0, -1, 2**64, 10**400, 1.5, 1e308, "", "x", [], {}, ["a"], {"a": 1}]
)
json_scalars = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(min_value=-(2**70), max_value=2**70),
    st.floats(allow_nan=False, allow_infinity=False),
    st.text(max_size=12),
)
json_values = st.recursive(
    json_scalars,
    lambda inner: (
        st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=6), inner, max_size=3)
    ),
    max_leaves=6,
)
