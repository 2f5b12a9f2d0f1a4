"""The classifier that judges the generative models: shapes, its family's sums, a short run."""

import os
import sys

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from debian_data import needs_fashion_mnist, prepare
from run_checks import check_run, tiny_config

from zoo.generative import Classifier, ClassifierConfig
from zoo.train import config as config_lib
from zoo.train.families import ClassifierFamily
from zoo.train.loop import train_and_evaluate

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
sys.path.insert(0, ROOT)

from configs import classifier_fashion_mnist  # noqa: E402

KEY = jax.random.PRNGKey(0)
SMALL = ClassifierConfig(data_shape=(8, 12, 1), num_classes=5, channels=(4, 6), feature_dim=7)


def _family() -> ClassifierFamily:
    config = config_lib.base_config()
    config.family, config.model.name = "classifier", "classifier_tiny"
    return ClassifierFamily(config_lib.validate(config))


@pytest.mark.parametrize("dtype", [jnp.float32, jnp.bfloat16])
def test_logits_and_features_have_the_documented_shapes(dtype):
    model = Classifier(ClassifierConfig(**{**SMALL.__dict__, "dtype": dtype}))
    x = jax.random.uniform(KEY, (3, 8, 12, 1))
    params = model.init(KEY, x)
    assert all(p.dtype == jnp.float32 for p in jax.tree.leaves(params))
    logits = model.apply(params, x)
    feats = model.apply(params, x, method=Classifier.features)
    assert logits.shape == (3, 5) and logits.dtype == jnp.float32
    assert feats.shape == (3, 7) and feats.dtype == jnp.float32 and (feats >= 0).all()
    # Dropout acts only when asked (and then needs its key).
    dropped = model.apply(params, x, deterministic=False, rngs={"dropout": KEY})
    assert not np.allclose(dropped, logits)
    with pytest.raises(ValueError, match="data_shape"):
        model.apply(params, jnp.zeros((3, 8, 8, 1)))


def test_family_loss_and_eval_sums_match_a_numpy_count():
    """The train loss is the mean cross-entropy; the eval step's correct count, loss and
    confusion matrix weigh only unmasked rows."""
    family = _family()
    model = Classifier(SMALL)
    params = model.init(KEY, jnp.zeros((2, 8, 12, 1)))["params"]
    x = jax.random.uniform(KEY, (6, 8, 12, 1))
    labels = jnp.array([0, 1, 2, 3, 4, 1], jnp.int32)
    mask = jnp.array([True, True, True, True, False, False])
    logits = np.asarray(model.apply({"params": params}, x), np.float64)  # [6, 5]
    log_p = logits - np.log(np.exp(logits).sum(-1, keepdims=True))
    nll = -log_p[np.arange(6), np.asarray(labels)]  # [6]
    loss, metrics = family.phases(model)(params, {"x": x, "label": labels}, KEY, True)
    assert float(loss) == pytest.approx(nll.mean(), rel=1e-5)
    sums = family.eval_step(model)(params, {"x": x, "label": labels, "mask": mask}, KEY)
    predicted = logits.argmax(-1)
    assert float(sums["count"]) == 4
    assert float(sums["correct"]) == np.sum((predicted == np.asarray(labels))[:4])
    assert float(sums["loss"]) == pytest.approx(nll[:4].sum(), rel=1e-5)
    confusion = np.zeros((5, 5))
    for true, guess in zip(np.asarray(labels)[:4], predicted[:4], strict=True):
        confusion[true, guess] += 1
    np.testing.assert_array_equal(np.asarray(sums["confusion"]).reshape(5, 5), confusion)


@pytest.mark.parametrize("overrides,field", [
    (dict(num_classes=0), "num_classes"),
    (dict(channels=()), "channels"),
    (dict(data_shape=(30, 30, 1)), "data_shape"),  # two 2x2 pools need multiples of 4
    (dict(dropout_rate=1.0), "dropout_rate"),
    (dict(dtype=jnp.float16), "dtype"),
])
def test_bad_configs_raise_naming_the_field(overrides, field):
    with pytest.raises(ValueError, match=field):
        ClassifierConfig(**overrides)


def test_a_classifier_run_needs_labels():
    config = classifier_fashion_mnist.get_config("tiny")
    config.data.fields = ("image",)
    with pytest.raises(ValueError, match="'data.fields'.*needs \\(image, label\\)"):
        ClassifierFamily(config_lib.validate(config)).data("/tmp/unused")


@pytest.mark.slow
@needs_fashion_mnist
def test_tiny_classifier_learns_fashion_mnist(tmp_path, shared_data_dir):
    """Also test_configs.py's run of the classifier config's tiny variant: 80 steps lift the
    test accuracy far above chance (0.1) and the confusion matrix is drawn."""
    config = tiny_config(classifier_fashion_mnist, **{
        "train.num_train_steps": 80, "train.eval_every": 40, "train.log_every": 40,
        "train.checkpoint_every": 80, "optim.warmup_steps": 5})
    prepare(config, shared_data_dir)
    result = train_and_evaluate(config, str(tmp_path))
    check_run(config, tmp_path, result)
    assert result["accuracy"] > 0.5, result
    assert (tmp_path / "images" / "classifier_confusion_step80.png").stat().st_size > 1000
