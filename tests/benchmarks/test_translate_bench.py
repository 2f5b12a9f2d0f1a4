"""The translation benchmark runs end to end (--quick) so it never rots."""

import json

from quick import run_quick


def test_quick_run_writes_results(tmp_path):
    run_quick("translate", tmp_path)
    with open(tmp_path / "translate_quick.json") as f:
        result = json.load(f)
    assert result["meta"]["jax"] and result["meta"]["args"]["beam"] == 4
    assert [r["implementation"] for r in result["rows"]] == ["zoo", "transformers"]
    assert all(r["sentences_per_s"] > 0 for r in result["rows"]) and result["ratio"] > 0
    assert "zoo / transformers" in (tmp_path / "translate_quick.md").read_text()
