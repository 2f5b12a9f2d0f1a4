"""``Family``: what differs between kinds of models in training; the loop does the rest.

A family says how its batches are made (``data``), which model classes it
trains and which config fields the data decides (``model_fields``), how the
parameters are created (``init_params``), what the train step optimises
(``phases``: one loss, or a sequence of updates such as a GAN's two) and how
the model is evaluated (``evaluate``). It does not build optimizers, jit
steps, shard, log or checkpoint: the loop (``zoo/train/loop.py``) does that,
the same way for every family, with the one core of ``zoo/train/state.py``.
"""

from __future__ import annotations

import abc
import functools
from collections.abc import Sequence
from typing import Any, ClassVar

import flax.linen as nn
import jax
import ml_collections
import optax

from zoo import registry
from zoo.train import config as config_lib
from zoo.train import metrics as metrics_lib
from zoo.train import state as state_lib
from zoo.train.data import Bundle
from zoo.train.state import LossFn, Phase, TrainState

EVAL_SEED = 1  # evaluation keys are fixed, whatever config.seed: runs compare on the same draws

# Train metrics that are sums over a window's examples rather than per-step means.
SUM_METRICS = ("nll_sum", "tokens", "correct", "examples")


class Family(abc.ABC):
    """One kind of training; instances hold the run's validated config."""

    name: ClassVar[str]
    modules: ClassVar[tuple[type[nn.Module], ...]]  # the model classes it trains
    # Top-level parameter names updated with separate optimizer states (a GAN's two
    # networks), or None: one update of every parameter.
    optimizer_groups: ClassVar[tuple[str, ...] | None] = None

    def __init__(self, config: ml_collections.ConfigDict):
        self.config = config
        module = registry.get(config.model.name).module
        if module not in self.modules:
            allowed = [n for n in registry.names() if registry.get(n).module in self.modules]
            raise ValueError(
                f"config key 'model.name' is {config.model.name!r}, a {module.__name__}; "
                f"family {self.name!r} trains {' and '.join(m.__name__ for m in self.modules)} "
                f"presets: {allowed}")

    # --- data and model -------------------------------------------------------------------

    @abc.abstractmethod
    def data(self, workdir: str) -> Bundle:
        """The run's batches, tokenizers and evaluation data."""

    @abc.abstractmethod
    def model_fields(self, module: type[nn.Module], info: dict) -> dict:
        """Config fields the data decides, from ``Bundle.vocab`` (vocabulary sizes, shapes)."""

    def build_model(self, info: dict) -> nn.Module:
        """The registry model of the config, with the fields the data decides."""
        module = registry.get(self.config.model.name).module
        fields = self.model_fields(module, info)
        return module(config=config_lib.model_config(self.config, **fields))

    @abc.abstractmethod
    def init_params(self, model: nn.Module, rngs: dict[str, jax.Array]) -> Any:
        """The model's 'params' collection (may carry logical-axis boxes); pure and
        traceable (the loop runs it under ``jax.eval_shape`` to plan shardings)."""

    def init_state(self, model: nn.Module, tx: optax.GradientTransformation,
                   rng: jax.Array) -> TrainState:
        params_rng, dropout_rng, state_rng = jax.random.split(rng, 3)
        params = self.init_params(model, {"params": params_rng, "dropout": dropout_rng})
        return TrainState.create(params, tx, state_rng, groups=self.optimizer_groups)

    # --- training ---------------------------------------------------------------------------

    @abc.abstractmethod
    def phases(self, model: nn.Module) -> LossFn | Sequence[Phase]:
        """What ``make_train_step`` optimises: a loss function or a sequence of phases."""

    def summarize(self, sums: dict, last: dict, window: int, seconds: float) -> dict:
        """Logged train metrics from the sums of a window of ``window`` steps.

        Per-step values (losses, gradient norms, the loss functions' own means)
        are averaged; sums over examples give perplexity and token accuracy
        (``metrics.summarize``) and throughput; the learning rate is the last one.
        """
        out = {k: float(v) / window for k, v in sums.items()
               if k not in SUM_METRICS and k != "learning_rate"}
        out.update(metrics_lib.summarize(sums))
        out["learning_rate"] = float(last["learning_rate"])
        for count, rate in (("tokens", "tokens_per_sec"), ("examples", "examples_per_sec")):
            if count in sums:
                out[rate] = float(sums[count]) / max(seconds, 1e-9)
        return out

    # --- evaluation -------------------------------------------------------------------------

    @abc.abstractmethod
    def evaluate(self, model: nn.Module, state: TrainState, data: Bundle, *, workdir: str,
                 step: int, log: metrics_lib.MetricWriter) -> dict:
        """Metrics on the held-out data. Pictures are written to the workdir and sent to
        TensorBoard through ``log`` with decoded examples or samples as text. Every
        process runs it (the parameters may span them all); only process 0 writes (the
        other processes' writers write nothing)."""

    @abc.abstractmethod
    def eval_step(self, model: nn.Module):
        """``(params, batch, key) -> dict of sums`` over one evaluation batch."""

    @functools.lru_cache(maxsize=8)  # noqa: B019 -- one compiled step per (family, model)
    def _sharded_eval_step(self, model: nn.Module):
        return state_lib.sharded_eval_step(self.eval_step(model))

    def eval_sums(self, model: nn.Module, state: TrainState, data: Bundle) -> dict:
        """The sums of ``eval_step`` over every evaluation batch; batch i gets the fixed
        key ``eval_key(0, i)``."""
        step = self._sharded_eval_step(model)
        return state_lib.eval_sums(lambda i, batch: step(state.params, batch, eval_key(0, i)),
                                   data.eval_batches())


class TokenFamily(Family):
    """A family trained on next-token cross-entropy ('seq2seq', 'lm'): its one loss is the
    train step and, run deterministically, the evaluation's token sums."""

    @abc.abstractmethod
    def loss_fn(self, model: nn.Module) -> LossFn:
        """``(params, batch, rng, deterministic) -> (loss, token sums)``."""

    def phases(self, model: nn.Module) -> LossFn:
        return self.loss_fn(model)

    def eval_step(self, model: nn.Module):
        return state_lib.make_eval_step(self.loss_fn(model))

    def token_metrics(self, model: nn.Module, state: TrainState, data: Bundle) -> dict:
        """nll, perplexity and token accuracy on the evaluation batches."""
        return metrics_lib.summarize(self.eval_sums(model, state, data))


def eval_key(stream: int, index: int = 0) -> jax.Array:
    """A fixed key for evaluation draw ``index`` of a stream (batches, pictured noise ...)."""
    return jax.random.fold_in(jax.random.fold_in(jax.random.PRNGKey(EVAL_SEED), stream), index)
