"""hetc.json_text writes bundle JSON without the standard library's pure-Python indenting encoder: the text
must be exactly what json.dumps writes with the same settings."""

from __future__ import annotations

import json
import math

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from hetc.json_text import to_json

scalars = (st.none() | st.booleans() | st.integers(-(2**70), 2**70)
           | st.floats(allow_nan=False, allow_infinity=False) | st.text(max_size=12))
keys = st.text(max_size=8) | st.integers(-5, 5) | st.sampled_from([None, True, False, 0.5])
values = st.recursive(scalars, lambda inner: st.lists(inner, max_size=4) | st.tuples(inner, inner)
                      | st.dictionaries(st.text(max_size=8), inner, max_size=4), max_leaves=30)


def reference(data) -> bytes:
    return (json.dumps(data, indent=2, sort_keys=True, ensure_ascii=True, allow_nan=False) + "\n").encode()


@settings(max_examples=400, deadline=None)
@given(values)
def test_writes_what_json_dumps_writes(data):
    assert to_json(data) == reference(data)


@settings(max_examples=100, deadline=None)
@given(st.dictionaries(st.integers(-9, 9), scalars, max_size=4) | st.dictionaries(st.text(max_size=3), scalars))
def test_keys_that_are_not_strings_are_written_as_json_writes_them(data):
    assert to_json(data) == reference(data)


@pytest.mark.parametrize("bad", [math.nan, math.inf, -math.inf, {"a": [1, math.nan]}])
def test_refuses_what_json_cannot_hold(bad):
    with pytest.raises(ValueError):
        to_json(bad)


@pytest.mark.parametrize("bad", [{1, 2}, {"a": object()}, {(1, 2): 3}])
def test_refuses_what_is_not_json(bad):
    with pytest.raises(TypeError):
        to_json(bad)
