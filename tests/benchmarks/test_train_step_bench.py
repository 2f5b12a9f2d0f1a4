"""The training-step benchmark runs end to end (--quick) so it never rots."""

import json

import pytest
from quick import run_quick

pytestmark = pytest.mark.slow  # a whole benchmark sweep, if a small one: make test-all


def test_quick_sweep_writes_results(tmp_path):
    run_quick("train_step", tmp_path)
    with open(tmp_path / "train_step_quick.json") as f:
        result = json.load(f)
    assert result["meta"]["jax"] and result["meta"]["device"]
    assert {r["family"] for r in result["registry"]} >= {"EncoderDecoder", "VAE"}
    assert all(r["per_s"] > 0 and r["compile_s"] > 0 for r in result["registry"])
    assert len(result["peers"]) == 3 and all(r["zoo"]["tokens_per_s"] > 0
                                             for r in result["peers"])
    if result["meta"]["torch"]:
        assert all(r["ratio"] > 0 for r in result["peers"])
    assert [r["layers"] for r in result["depth"]] == [2]
    assert "scan / unrolled step" in (tmp_path / "train_step_quick.md").read_text()
    assert (tmp_path / "train_step_quick.png").stat().st_size > 1000
