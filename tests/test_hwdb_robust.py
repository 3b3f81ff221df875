"""Hardware database files that deserve an error get a located one (issue 12): a 401-digit number was an
OverflowError, two entries with one id in a file were silently merged (last wins), an unknown vendor was
accepted and the plan then failed its own schema."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

from hetc.bundle.schema import plan_schema
from hetc.errors import HetcError
from hetc.hwdb.loader import HWDB_DIR, load_hwdb
from hetc.hwdb.schema import KINDS, VENDORS


@pytest.mark.parametrize("text, message", [
    ("devices:\n  - id: nvidia-h100-sxm\n    mem_gb: 70\n  - id: nvidia-h100-sxm\n    mem_gb: 90\n",
     r"extra.yaml:4:9: error: device 'nvidia-h100-sxm' is defined twice in this file \(first at .*extra.yaml:2:9\)"),
    ("id: nvidia-h100-sxm\nmem_gb: 1" + "0" * 400 + "\n",
     r"extra.yaml:2:9: error: field 'mem_gb': 1000.*\(401 characters\) is implausibly large"),
    ("id: acme-x1\ninherits: nvidia-h100-sxm\nvendor: acme\n",
     r"extra.yaml:3:9: error: field 'vendor': expected one of nvidia, amd, intel, google, got 'acme'"),
    ("id: acme+x1\ninherits: nvidia-h100-sxm\n", r"extra.yaml:1:5: error: field 'id': expected a lower-case"),
    ("id: " + "a" * 65 + "\ninherits: nvidia-h100-sxm\n", r"field 'id': expected a lower-case .*at most 64"),
])
def test_bad_extra_files_are_located_errors(tmp_path: Path, text: str, message: str):
    extra = tmp_path / "extra.yaml"
    extra.write_text(text)
    with pytest.raises(HetcError, match=message):
        load_hwdb("default", [extra])


@pytest.mark.parametrize("value", [".nan", ".inf", "1" + "0" * 400])
def test_tco_defaults_must_be_finite(tmp_path: Path, value: str):
    folder = tmp_path / "db"
    shutil.copytree(HWDB_DIR, folder, ignore=shutil.ignore_patterns("*.py", "__pycache__", "paper-2025"))
    meta = folder / "database.yaml"
    meta.write_text(meta.read_text().replace("pue: ", f"pue: {value} #", 1))
    with pytest.raises(HetcError, match="field 'tco_defaults.pue': expected a finite non-negative number"):
        load_hwdb(str(folder))


def test_vendors_and_kinds_are_the_ones_plans_may_name():
    stage = plan_schema()["$defs"]["stage"]["properties"]
    assert set(VENDORS) == {v for v in stage["vendor"]["enum"] if v is not None}
    assert set(KINDS) == {v for v in stage["device_kind"]["enum"] if v is not None}
