"""What the property tests share: hypothesis settings that keep them reproducible and
quick in CI (a fixed number of examples, derandomised: the same examples every run, no
example database, no deadline: a busy machine must not fail them), and the odd values
outside data may carry."""

from __future__ import annotations

from hypothesis import HealthCheck, settings
from hypothesis import strategies as st

FUZZ = settings(max_examples=300, deadline=None, derandomize=True, database=None,
                suppress_health_check=[HealthCheck.function_scoped_fixture,
                                       HealthCheck.too_slow])

json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats() | st.text(max_size=20),
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=8), inner,
                                                                max_size=4),
    max_leaves=12)
odd_ids = st.one_of(
    st.integers(1, 10**6), st.integers(1, 10**6).map(str), st.integers(), st.booleans(),
    st.floats(), st.text(max_size=12),
    st.sampled_from(["²", "①", "4²", "٣", "9" * 4301, " 12 ", "-1", "0", "1e3", "0x10",
                     "12\n", "\uff11\uff12", str(2**63), str(2**63 - 1)]),
    json_values)
