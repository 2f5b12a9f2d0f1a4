"""The 'classifier' family: an image classifier, the judge of the generative models.

Glossary: B batch, Y height, X width, C channels, L classes.

Batches are ``{'x': float32 [B, Y, X, C] in [0, 1], 'label': int32 [B], 'mask': bool [B]}``
from ``zoo.train.data.array_data`` with ``data.fields = ('image', 'label')``; the
data decides the image shape and the number of classes. Training minimises
cross-entropy with dropout (the step's key); evaluation reports the test
cross-entropy and accuracy, and the confusion matrix as a picture,
``<workdir>/images/classifier_confusion_step{N}.png``. The trained classifier's
features and predictions measure the samples of the generative models
(``benchmarks/generative.py``).
"""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np
import optax

from zoo.generative.classifier import Classifier
from zoo.train import data as data_lib
from zoo.train import plots
from zoo.train.families.base import Family
from zoo.train.families.generative import picture_path, send_pictures
from zoo.train.state import TrainState


class ClassifierFamily(Family):
    name = "classifier"
    modules = (Classifier,)

    def data(self, workdir: str) -> data_lib.Bundle:
        if len(tuple(self.config.data.fields)) != 2:
            raise ValueError(f"config key 'data.fields' is {tuple(self.config.data.fields)!r}; "
                             "family 'classifier' needs (image, label), e.g. ('image', 'label')")
        return data_lib.array_data(self.config, workdir, value_range=(0.0, 1.0))

    def model_fields(self, module, info: dict) -> dict:
        return {"data_shape": tuple(info["data_shape"]), "num_classes": info["num_classes"]}

    def init_params(self, model: Classifier, rngs):
        x = jnp.zeros((2, *model.config.data_shape), jnp.float32)  # [2, Y, X, C] shapes only
        return model.init(rngs["params"], x)["params"]

    def phases(self, model: Classifier):
        def loss_fn(params, batch, rng, deterministic):
            logits = model.apply({"params": params}, batch["x"], deterministic=deterministic,
                                 rngs={"dropout": rng})  # [B, L]
            loss = optax.softmax_cross_entropy_with_integer_labels(logits, batch["label"])  # [B]
            correct = jnp.sum(jnp.argmax(logits, -1) == batch["label"])
            return jnp.mean(loss), {"accuracy": correct / batch["label"].shape[0],
                                    "examples": jnp.asarray(logits.shape[0], jnp.float32)}

        return loss_fn

    def eval_step(self, model: Classifier):
        num_classes = model.config.num_classes

        def eval_step(params, batch, key):
            del key  # deterministic
            logits = model.apply({"params": params}, batch["x"])  # [B, L]
            weights = batch["mask"].astype(jnp.float32)  # [B]
            loss = optax.softmax_cross_entropy_with_integer_labels(logits, batch["label"])
            predicted = jnp.argmax(logits, -1)  # [B]
            pairs = batch["label"] * num_classes + predicted  # [B] (true, predicted) as one id
            confusion = jnp.zeros(num_classes * num_classes).at[pairs].add(weights)  # [L L]
            return {"loss": jnp.sum(loss * weights), "count": jnp.sum(weights),
                    "correct": jnp.sum((predicted == batch["label"]) * weights),
                    "confusion": confusion}

        return eval_step

    def evaluate(self, model: Classifier, state: TrainState, data, *, workdir: str, step: int,
                 log) -> dict:
        sums = self.eval_sums(model, state, data)
        count = max(float(sums["count"]), 1.0)
        num_classes = model.config.num_classes
        confusion = np.asarray(sums["confusion"]).reshape(num_classes, num_classes)
        if jax.process_index() == 0:
            path = plots.plot_confusion(picture_path(workdir, "classifier_confusion", step),
                                        confusion, labels=data.extras["class_names"],
                                        title=f"classifier, step {step}")
            send_pictures(log, step, {"classifier_confusion": path})
        return {"loss": float(sums["loss"]) / count, "accuracy": float(sums["correct"]) / count}


__all__ = ["ClassifierFamily"]
