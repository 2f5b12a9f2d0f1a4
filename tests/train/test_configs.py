"""Every experiment config's `tiny` variant trains and evaluates end to end.

No run is trained twice:

- the default job's tiny variant (date_seq2seq) is trained, on one device, by
  the ``finished`` fixture of test_loop.py, whose tests check its metrics,
  pictures and checkpoints and then resume, corrupt and restore it;
- ``TRAINED_ELSEWHERE`` variants are trained, longer, by a learning test of
  their family, which also makes this file's checks (``run_checks.check_run``)
  on its run;
- a variant listed in ``SAME_RUN_AS`` is another variant's run but for the
  config values listed there, which ``test_tiny_variants_that_are_the_same_run``
  pins; should the two ever differ in anything else, that test fails and the
  variant must be trained here. The values they may differ in are tested on
  their own (schedules and clipping in test_optim.py, post-LN and dropout in
  tests/transformer). The translation models are trained tiny once each, the
  Transformer on de-en and the RNNs on es-en, so both corpora and all four
  models go through the loop.
"""

import importlib
import os
import sys

import pytest
from debian_data import needs, prepare
from run_checks import check_run

from zoo.train import config as config_lib
from zoo.train.loop import train_and_evaluate
from zoo.train.translation import align

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
sys.path.insert(0, ROOT)

BIBLE = "sword-text-kjv sword-text-sparv"
# config "module:argument" -> the Debian package its data comes from (None: generated)
CONFIGS = {
    "nmt_de_en:tiny": "trans-de-en",
    "nmt_es_en:bahdanau,tiny": BIBLE,
    "nmt_es_en:luong,tiny": BIBLE,
    "nmt_es_en:plain,tiny": BIBLE,
    "lm_wordnet:tiny": "wordnet-base",
    "gan_fashion_mnist:tiny": "dataset-fashion-mnist",
}
# variant -> the test that trains it (with more steps) and checks its run as this file does
TRAINED_ELSEWHERE = {
    "vae_fashion_mnist:tiny": ("generative/test_family.py",
                               "test_vae_on_fashion_mnist_improves_its_elbo_and_draws_grids"),
    "gan_toy:tiny": ("generative/test_family.py", "test_toy_gan_learns_the_ring_and_draws_it"),
    "classifier_fashion_mnist:tiny": ("generative/test_classifier.py",
                                      "test_tiny_classifier_learns_fashion_mnist"),
    "ebm_toy:tiny": ("generative/test_ebm.py", "test_toy_ebm_learns_the_ring_and_draws_it"),
    "diffusion_fashion_mnist:tiny": ("generative/test_diffusion.py",
                                     "test_tiny_ddpm_learns_on_fashion_mnist_and_draws"),
    "pixelcnn_fashion_mnist:tiny": ("generative/test_pixelcnn.py",
                                    "test_pixelcnn_on_fashion_mnist_learns_and_draws_samples"),
    "flow_fashion_mnist:tiny": ("generative/test_flow.py",
                                "test_tiny_flow_on_fashion_mnist_learns_and_draws_each_temperature"),
}

_DE_EN = {("data", "dataset"), ("data", "fields")}
# variant -> (the variant whose tiny run it shares, the only (section, key)s that may differ)
SAME_RUN_AS = {
    # es-en's Transformer recipe is a short run: more learning rate, less dropout.
    "nmt_es_en:tiny": ("nmt_de_en:tiny", _DE_EN | {("model", "dropout_rate"),
                                                   ("optim", "learning_rate")}),
    "nmt_de_en:bahdanau,tiny": ("nmt_es_en:bahdanau,tiny", _DE_EN),
    "nmt_de_en:luong,tiny": ("nmt_es_en:luong,tiny", _DE_EN),
    "nmt_de_en:plain,tiny": ("nmt_es_en:plain,tiny", _DE_EN),
    # The paper's recipe at the tiny size: post-LN and the rsqrt schedule without clipping.
    "transformer_base:tiny": ("nmt_de_en:tiny", {
        ("model", "norm_placement"), ("model", "dropout_rate"),
        ("model", "attention_dropout_rate"), ("model", "ffn_dropout_rate"),
        ("optim", "schedule"), ("optim", "learning_rate"), ("optim", "clip_grad_norm"),
        ("optim", "weight_decay"), ("train", "max_to_keep")}),
}


def _config(variant: str):
    module, _, arg = variant.partition(":")
    return importlib.import_module(f"configs.{module}").get_config(arg or None)


def _skip_without(package):
    return [] if package is None else [needs(package)]


def test_every_config_file_is_listed():
    files = {f[:-3] for f in os.listdir(os.path.join(ROOT, "configs")) if f.endswith(".py")
             and not f.startswith("_")}
    listed = {v.partition(":")[0] for v in [*CONFIGS, *TRAINED_ELSEWHERE, *SAME_RUN_AS]}
    assert files == listed | {"date_seq2seq"}


@pytest.mark.parametrize("name", list(TRAINED_ELSEWHERE))
def test_the_runs_trained_elsewhere_are_checked_there(name):
    path, function = TRAINED_ELSEWHERE[name]
    source = open(os.path.join(ROOT, "tests", path)).read()
    body = source.split(f"def {function}(", 1)[1].split("\ndef ", 1)[0]
    module = name.partition(":")[0]
    assert f"tiny_config({module}" in body and "check_run(" in body, (path, function)


# Trained in test_configs_es_en.py: another file, so xdist's loadfile can run it on the
# other worker.
ES_EN = [name for name in CONFIGS if name.startswith("nmt_es_en:")]


@pytest.mark.parametrize("name", [pytest.param(n, marks=[pytest.mark.slow, *_skip_without(p)])
                                  for n, p in CONFIGS.items() if n not in ES_EN])
def test_tiny_variant_trains(name, tmp_path, shared_data_dir):
    check_tiny_run(name, tmp_path, shared_data_dir)


def check_tiny_run(name, tmp_path, data_dir):
    """Trains ``name``'s tiny variant in ``tmp_path`` and checks what the run wrote."""
    config = _config(name)
    prepare(config, data_dir)
    check_run(config, tmp_path, train_and_evaluate(config, str(tmp_path)))
    if "plain" in config.model.name:
        with pytest.raises(ValueError, match="no attention to draw"):
            align(str(tmp_path), "En el principio creó Dios los cielos y la tierra.")


def test_plain_variant_of_the_date_job_is_a_plain_seq2seq():
    from configs import date_seq2seq

    assert date_seq2seq.get_config("plain").model.name == "seq2seq_plain_lstm"
    with pytest.raises(ValueError, match="'nope'"):
        date_seq2seq.get_config("nope")


@pytest.mark.parametrize("name", list(SAME_RUN_AS))
def test_tiny_variants_that_are_the_same_run(name):
    other, allowed = SAME_RUN_AS[name]
    mine, theirs = (config_lib.validate(_config(n)).to_dict() for n in (name, other))
    differ = {(section, key) for section, values in mine.items() if isinstance(values, dict)
              for key in values.keys() | theirs[section].keys()
              if values.get(key) != theirs[section].get(key)}
    differ |= {(section, None) for section, value in mine.items()
               if not isinstance(value, dict) and value != theirs[section]}
    assert differ == allowed, f"{name} now differs from {other} in {differ}"
    config_lib.validate(_config(name.replace("tiny", "").rstrip(",:")))  # the full one


@pytest.mark.parametrize("module", ["nmt_es_en", "nmt_de_en"])
def test_translation_configs_name_their_model_and_refuse_unknown_arguments(module):
    names = {arg: config_lib.validate(_config(f"{module}:{arg}")).model.name
             for arg in ("", "transformer", "bahdanau", "luong", "plain", "luong,tiny")}
    assert names == {"": "transformer_small", "transformer": "transformer_small",
                     "bahdanau": "seq2seq_bahdanau_gru", "luong": "seq2seq_luong_lstm",
                     "plain": "seq2seq_plain_lstm", "luong,tiny": "seq2seq_luong_lstm"}
    for bad in ("nope", "tiny,tiny", "plain,luong", "plain,tiny,x"):
        with pytest.raises(ValueError, match=f"config argument '{bad}' unknown"):
            _config(f"{module}:{bad}")
    luong = config_lib.validate(_config(f"{module}:luong")).model
    assert luong.get("input_feeding", True)  # the preset's Luong: general score, input feeding
