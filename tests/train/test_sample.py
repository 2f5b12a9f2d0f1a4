"""Sampling from a trained LM's checkpoint: the module function and train.py's --sample."""

import json
import os
import subprocess
import sys

import pytest
from cli import train_py

from zoo.train.loop import train_and_evaluate
from zoo.train.sample import sample_from_checkpoint

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
sys.path.insert(0, ROOT)

from configs import gan_toy, lm_wordnet  # noqa: E402

STEPS = 20


@pytest.fixture(scope="module")
def lm_run(tmp_path_factory):
    """lm_wordnet's tiny LM trained briefly on generated ISO dates (no Debian data needed)."""
    workdir = tmp_path_factory.mktemp("lm_run")
    config = lm_wordnet.get_config("tiny")
    config.data.dataset = "generated_tasks/dates"
    config.data.fields = ("target",)  # "1984-01-09"
    config.data.num_train = 256
    config.train.num_train_steps = STEPS
    config.optim.warmup_steps = 200  # pinned: the samples below depend on the learning rates
    config.train.eval_every = STEPS
    config.train.checkpoint_every = 10
    config.mesh.num_devices = 1  # a quarter faster than the 8 fake devices; sampling is the subject
    train_and_evaluate(config, str(workdir))
    return workdir


def test_samples_continue_each_prompt_reproducibly(lm_run):
    out = sample_from_checkpoint(str(lm_run), ["19", ""], num_samples=3, max_new_tokens=6,
                                 seed=3)
    assert out.step == STEPS and out.prompts == ["19", ""]
    assert [len(texts) for texts in out.texts] == [3, 3]
    alphabet = set("0123456789-")  # the training texts' characters
    assert all(set(text) <= alphabet and len(text) <= 6 for texts in out.texts for text in texts)
    again = sample_from_checkpoint(str(lm_run), ["19", ""], num_samples=3, max_new_tokens=6,
                                   seed=3)
    assert again.texts == out.texts


def test_the_command_line_samples_with_the_workdirs_config(lm_run):
    cmd = [sys.executable, os.path.join(ROOT, "train.py"), "--workdir", str(lm_run),
           "--sample", "20", "--sample", "", "--num_samples", "2", "--max_new_tokens", "5"]
    proc = subprocess.run(cmd, cwd=ROOT, capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr[-3000:]
    lines = proc.stdout.splitlines()
    assert f"samples from step {STEPS} of {lm_run}:" in lines
    assert sum(line.startswith("  '20' + ") for line in lines) == 2
    assert sum(line.startswith("  '' + ") for line in lines) == 2


def test_the_command_line_explains_a_workdir_without_a_run(tmp_path):
    proc = train_py("--workdir", tmp_path, "--sample", "a")
    assert proc.returncode == 1 and "has no config.json" in proc.stderr


def test_clear_errors(tmp_path, lm_run):
    with pytest.raises(ValueError, match="no config.json"):
        sample_from_checkpoint(str(tmp_path))
    os.makedirs(tmp_path / "untrained")
    with open(lm_run / "config.json") as f:
        config = json.load(f)
    with open(tmp_path / "untrained" / "config.json", "w") as f:
        json.dump(config, f)
    with pytest.raises(ValueError, match="no checkpoint"):
        sample_from_checkpoint(str(tmp_path / "untrained"))
    with pytest.raises(ValueError, match="family 'lm'.*'gan'"):
        sample_from_checkpoint(str(tmp_path), config=gan_toy.get_config("tiny"))
    with pytest.raises(ValueError, match="num_samples"):
        sample_from_checkpoint(str(lm_run), num_samples=0)
