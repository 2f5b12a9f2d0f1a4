"""The attention benchmark runs end to end (--quick) so it never rots."""

import json

import pytest
from quick import run_quick

pytestmark = pytest.mark.slow  # a whole benchmark sweep, if a small one: make test-all


def test_quick_sweep_writes_results(tmp_path):
    run_quick("attention", tmp_path)
    with open(tmp_path / "attention_quick.json") as f:
        result = json.load(f)
    assert result["meta"]["jax"] and result["meta"]["device"]
    kernels = {r["kernel"] for r in result["rows"]}
    assert {"zoo.reference", "zoo.xla", "zoo.blockwise", "zoo.auto"} <= kernels
    assert all(r["tflops"] > 0 for r in result["rows"])
    assert (tmp_path / "attention_quick.md").read_text().count("|") > 50
    assert (tmp_path / "attention_quick.png").stat().st_size > 1000
