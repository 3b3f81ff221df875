"""Every example still compiles to the recorded plan: hardware, replicas and cost to the cent (see plan_figures.py)."""

import json

import pytest
from plan_figures import EXAMPLES, RECORDS, compile_figures, record_name


@pytest.mark.parametrize("spec", EXAMPLES, ids=record_name)
def test_example_plan_figures_are_unchanged(spec, tmp_path):
    recorded = json.loads((RECORDS / f"{record_name(spec)}.json").read_text())
    assert compile_figures(spec, tmp_path / "bundle") == recorded, (
        "plan figures moved; if intended, run `python tests/plan_figures.py --write` and say why in the commit")
