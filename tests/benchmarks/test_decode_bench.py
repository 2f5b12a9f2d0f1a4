"""The decoding benchmark runs end to end (--quick) so it never rots."""

import json

import pytest
from quick import run_quick

pytestmark = pytest.mark.slow  # a whole benchmark sweep, if a small one: make test-all


def test_quick_sweep_writes_results(tmp_path):
    run_quick("decode", tmp_path)
    with open(tmp_path / "decode_quick.json") as f:
        result = json.load(f)
    assert result["meta"]["jax"] and result["meta"]["model"] == "lm_tiny"
    assert {(r["P"], r["N"]) for r in result["rows"]} == {(4, 4), (16, 4), (4, 16)}
    assert all(r["cache"]["tokens_per_s"] > 0 and r["no_cache"]["tokens_per_s"] > 0
               for r in result["rows"])
    assert (tmp_path / "decode_quick.md").read_text().count("|") > 20
    assert (tmp_path / "decode_quick.png").stat().st_size > 1000
