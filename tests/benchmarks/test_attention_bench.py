"""The attention benchmark runs end to end (--quick) so it never rots."""

import json
import os
import subprocess
import sys

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))


def test_quick_sweep_writes_results(tmp_path):
    subprocess.run([sys.executable, os.path.join(ROOT, "benchmarks", "attention.py"), "--quick",
                    "--out", str(tmp_path)], check=True, timeout=600, cwd=ROOT)
    with open(tmp_path / "attention_quick.json") as f:
        result = json.load(f)
    assert result["meta"]["jax"] and result["meta"]["device"]
    kernels = {r["kernel"] for r in result["rows"]}
    assert {"zoo.reference", "zoo.xla", "zoo.blockwise", "zoo.auto"} <= kernels
    assert all(r["tflops"] > 0 for r in result["rows"])
    assert (tmp_path / "attention_quick.md").read_text().count("|") > 50
    assert (tmp_path / "attention_quick.png").stat().st_size > 1000
