"""What every finished train.py run must have written, whatever its family.

Shared by test_configs.py (every config's tiny run) and the family tests that
train a tiny variant longer in test_configs.py's place.
"""

import os

from zoo.train.tensorboard import read_events


def check_run(config, workdir, result: dict) -> None:
    """``result`` (train_and_evaluate's) and the files of the finished run in ``workdir``."""
    assert result, "evaluation produced no metrics"
    assert (workdir / "metrics.jsonl").exists()
    assert os.listdir(workdir / "checkpoints")
    assert os.listdir(workdir / "tb") and (workdir / "model_summary.txt").exists()
    if config.family in ("vae", "gan"):  # the generative families draw at every evaluation
        assert os.listdir(workdir / "images")
        tags = {e.summary.value[0].tag for e in read_events(
            str(next((workdir / "tb").iterdir()))) if e.HasField("summary")}
        assert any(t.startswith("images/") for t in tags), tags
    if config.family == "seq2seq":  # attention pictures: an RNN's alignment, a Transformer's heads
        assert os.path.exists(workdir / "attention") == ("plain" not in config.model.name)
