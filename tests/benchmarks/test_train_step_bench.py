"""The training-step benchmark runs end to end (--quick) so it never rots."""

import json
import sys

import pytest
from quick import BENCHMARKS, run_quick

from zoo import registry

sys.path.insert(0, BENCHMARKS)
import train_step  # noqa: E402


@pytest.mark.slow  # a whole benchmark sweep, if a small one: make test-all
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


def test_every_registered_module_has_a_step_builder():
    """The full sweep times every preset; a family added without a builder stopped it
    (KeyError 'Classifier', 2026-12-03)."""
    classes = {registry.get(name).module.__name__ for name in registry.names()}
    assert classes <= set(train_step.FAMILIES), classes - set(train_step.FAMILIES)


@pytest.mark.slow  # 35 s of compiles: make test-all
@pytest.mark.parametrize("name", ["classifier_tiny", "pixelcnn_tiny", "flow_tiny", "ddpm_tiny",
                                  "ebm_tiny"])
def test_generative_family_steps_run(name):
    entry = registry.get(name)
    build, unit = train_step.FAMILIES[entry.module.__name__]
    run, compile_s, per_step = build(name, entry.config, 2, 0, 0)
    run()
    assert unit == "examples" and per_step == 2 and compile_s > 0
