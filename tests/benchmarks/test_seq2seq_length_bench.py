"""The plain-vs-attention length benchmark runs end to end (--quick) so it never rots."""

import json

import pytest
from quick import run_quick

pytestmark = pytest.mark.slow  # a whole benchmark sweep, if a small one: make test-all


def test_quick_run_writes_results(tmp_path):
    run_quick("seq2seq_length", tmp_path)
    with open(tmp_path / "seq2seq_length_quick.json") as f:
        result = json.load(f)
    assert result["meta"]["jax"] and result["meta"]["quick"]
    assert list(result["runs"]) == ["plain LSTM", "attention LSTM (Luong dot)"]
    for run in result["runs"].values():
        assert run["params"] > 0 and run["train_seconds"] > 0
        assert [step for step, _ in run["losses"]] == [30]  # --quick: 30 steps
        assert sorted(int(n) for n in run["by_length"]) == list(range(2, 9))
        # One length per set, so every row has as many tokens: exact match <= token accuracy.
        assert all(0 <= exact <= token <= 1 for exact, token in run["by_length"].values())
    assert (tmp_path / "seq2seq_length_quick.md").read_text().count("|") > 20
    assert (tmp_path / "seq2seq_length_quick.png").stat().st_size > 1000
