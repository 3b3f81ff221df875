"""hetc.yaml_text writes bundle YAML without PyYAML's dumper: whatever it writes must read back exactly."""

from __future__ import annotations

import yaml
from hypothesis import given, settings
from hypothesis import strategies as st

from hetc.yaml_text import to_yaml

# strings YAML 1.1 would read as something else, or that need quoting or escapes
TRICKY = ["yes", "No", "on", "null", "~", "", " ", "1", "0x1F", "1_000", "1:20", "1e3", ".5", "2024-01-01",
          "-", "- a", "a: b", "#x", "a #b", "'", '"', "\\", "\n", "\t", "é", "\u202e", "\U0001f600", "\x85",
          "\ud800", "&a", "*a", "!t", "%x", "@x", "`x", "{a}", "[a]", ">", "|", "?", "a\nb", "trailing ", "a:", "a:b", "1:2:3", "http://x y"]

scalars = (st.none() | st.booleans() | st.integers(-(2**70), 2**70)
           | st.floats(allow_nan=False, allow_infinity=False) | st.sampled_from(TRICKY) | st.text(max_size=12))
values = st.recursive(scalars, lambda inner: st.lists(inner, max_size=4)
                      | st.dictionaries(st.sampled_from(TRICKY) | st.text(max_size=8), inner, max_size=4),
                      max_leaves=30)


@settings(max_examples=400, deadline=None)
@given(st.dictionaries(st.sampled_from(TRICKY) | st.text(max_size=8), values, max_size=5)
       | st.lists(values, max_size=5))
def test_reads_back_exactly(data):
    assert yaml.safe_load(to_yaml(data)) == data


def test_layout_matches_pyyaml_block_style():
    data = {"b": [1, {"x": "on", "y": [[], {}]}], "a": {"k": "v w", "n": None, "f": 1e-05, "t": True}}
    text = to_yaml(data)
    assert text == yaml.safe_dump(data, sort_keys=True, default_flow_style=False)
