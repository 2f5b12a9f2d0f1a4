"""Every experiment config's `tiny` variant trains and evaluates end to end.

No run is trained twice:

- the default job's tiny variant (date_seq2seq) is trained, unchanged, by the
  ``finished`` fixture of test_loop.py, whose tests check its metrics, pictures
  and checkpoints and then resume, corrupt and restore it;
- transformer_base's tiny variant is transformer_de_en's (both call its
  ``make_tiny``) but for three hyperparameter values, which
  ``test_tiny_variants_that_are_the_same_run`` pins; should the two ever differ
  in anything else, that test fails and the variant must be trained here.
"""

import importlib
import os
import sys

import pytest
from debian_data import needs

from zoo.train import config as config_lib
from zoo.train.loop import train_and_evaluate

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
sys.path.insert(0, ROOT)

# config module -> the Debian package its data comes from (None: generated, always there)
CONFIGS = {
    "transformer_de_en": "trans-de-en",
    "lm_wordnet": "wordnet-base",
    "vae_fashion_mnist": "dataset-fashion-mnist",
    "gan_fashion_mnist": "dataset-fashion-mnist",
    "gan_toy": None,
}


# config -> (the config whose tiny run it shares, the only (section, key)s that may differ)
SAME_RUN_AS = {
    "transformer_base": ("transformer_de_en", {("model", "dropout_rate"),
                                               ("optim", "learning_rate"),
                                               ("optim", "clip_grad_norm")}),
}


def _skip_without(package):
    return [] if package is None else [needs(package)]


def test_every_config_file_is_listed():
    files = {f[:-3] for f in os.listdir(os.path.join(ROOT, "configs")) if f.endswith(".py")
             and not f.startswith("_")}
    assert files == set(CONFIGS) | {"date_seq2seq"} | set(SAME_RUN_AS)


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


@pytest.mark.parametrize("name", list(SAME_RUN_AS))
def test_tiny_variants_that_are_the_same_run(name):
    other, allowed = SAME_RUN_AS[name]
    mine, theirs = (config_lib.validate(importlib.import_module(f"configs.{n}").get_config("tiny"))
                    .to_dict() for n in (name, other))
    differ = {(section, key) for section, values in mine.items() if isinstance(values, dict)
              for key in values.keys() | theirs[section].keys()
              if values.get(key) != theirs[section].get(key)}
    differ |= {(section, None) for section, value in mine.items()
               if not isinstance(value, dict) and value != theirs[section]}
    assert differ == allowed, f"{name}:tiny now differs from {other}:tiny in {differ}"
    config_lib.validate(importlib.import_module(f"configs.{name}").get_config())  # the full one
