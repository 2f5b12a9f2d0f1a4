"""Every experiment config's `tiny` variant trains and evaluates end to end.

The default job's tiny variant (date_seq2seq) is trained, unchanged, by the
``finished`` fixture of test_loop.py, whose tests check its metrics, pictures and
checkpoints and then resume, corrupt and restore it; it is not trained twice.
"""

import importlib
import os
import sys

import pytest
from debian_data import needs

from zoo.train.loop import train_and_evaluate

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
sys.path.insert(0, ROOT)

# config module -> the Debian package its data comes from (None: generated, always there)
CONFIGS = {
    "transformer_de_en": "trans-de-en",
    "transformer_base": "trans-de-en",
    "lm_wordnet": "wordnet-base",
    "vae_fashion_mnist": "dataset-fashion-mnist",
    "gan_fashion_mnist": "dataset-fashion-mnist",
    "gan_toy": None,
}


def _skip_without(package):
    return [] if package is None else [needs(package)]


def test_every_config_file_is_listed():
    files = {f[:-3] for f in os.listdir(os.path.join(ROOT, "configs")) if f.endswith(".py")
             and not f.startswith("_")}
    assert files == set(CONFIGS) | {"date_seq2seq"}  # that one: test_loop.py


@pytest.fixture(scope="module")
def data_dir(tmp_path_factory):
    """One TFDS data_dir for the module: configs that read the same corpus prepare it once."""
    return str(tmp_path_factory.mktemp("tfds"))


@pytest.mark.parametrize("name", [pytest.param(n, marks=_skip_without(p))
                                  for n, p in CONFIGS.items()])
def test_tiny_variant_trains(name, tmp_path, data_dir):
    config = importlib.import_module(f"configs.{name}").get_config("tiny")
    config.data.data_dir = data_dir
    result = train_and_evaluate(config, str(tmp_path))
    assert result, "evaluation produced no metrics"
    assert (tmp_path / "metrics.jsonl").exists()
    assert os.listdir(tmp_path / "checkpoints")
    if config.family in ("vae", "gan"):  # the generative families draw at every evaluation
        assert os.listdir(tmp_path / "images")


def test_plain_variant_of_the_date_job_is_a_plain_seq2seq():
    from configs import date_seq2seq

    assert date_seq2seq.get_config("plain").model.name == "seq2seq_plain_lstm"
    with pytest.raises(ValueError, match="'nope'"):
        date_seq2seq.get_config("nope")
