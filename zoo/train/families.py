"""Model families: how a batch feeds a model, and how the model is evaluated.

Glossary: B batch, S source length, T target length, V vocabulary.

``seq2seq`` covers every encoder–decoder in the zoo (RNN seq2seq and the
Transformer EncoderDecoder): batches are dicts with ``src [B, S]``,
``src_lengths [B]``, ``tgt_in [B, T]`` (BOS y1 .. yn), ``tgt_out [B, T]``
(y1 .. yn EOS) and ``tgt_lengths [B]``; evaluation decodes the held-out
sources for real (greedy or beam) and scores exact match (generated tasks) or
sacreBLEU (translation), and draws attention heat maps.

``lm`` covers decoder-only language models: ``inputs [B, T]``, ``targets
[B, T]``, ``lengths [B]``; evaluation reports perplexity and prints samples.

``vae`` and ``gan`` (``zoo/generative/family.py``) train the generative models
on arrays ``x [B, ...]``: images or points; evaluation reports the test-set
negative ELBO (VAE) or the discriminator's view of held-out data (GAN) and
draws sample grids.
"""

from __future__ import annotations

import os
from collections.abc import Callable
from typing import Any, NamedTuple

import jax
import jax.numpy as jnp
import numpy as np
from jax.sharding import NamedSharding, PartitionSpec

from zoo.train import losses, optim, plots
from zoo.train import metrics as metrics_lib
from zoo.train import state as state_lib
from zoo.train.state import TrainState


class Family(NamedTuple):
    """How one kind of model is fed, stepped and evaluated; the loop does the rest.

    ``init_state`` must be a pure, traceable function of ``rng`` (the loop runs
    it under ``jax.eval_shape`` to plan shardings, then jitted with sharded
    outputs); parameters may carry logical-axis boxes. Steps see unboxed state.
    """

    data: Callable[..., Any]  # (config, workdir) -> a data bundle (zoo/train/data.py)
    vocab_fields: Callable[..., dict]  # (module class, data.vocab) -> config fields
    init_state: Callable[..., Any]  # (model, config, rng) -> state (a pytree with .step)
    make_train_step: Callable[..., Any]  # (model, config) -> step(state, batch) -> (state, m)
    summarize: Callable[..., dict]  # (summed metrics, last metrics, steps, seconds) -> logged
    make_evaluate: Callable[..., Any]  # (model, config) -> eval(state, data, *, workdir, step)


class Seq2SeqAdapter(NamedTuple):
    """How one encoder-decoder class is called, decoded and asked for its attention."""

    init: Callable[..., Any]  # (model, rngs, batch) -> variables
    forward: Callable[..., Any]  # (model, variables, batch, deterministic, rngs) -> logits
    generate: Callable[..., Any]  # (model, params, src, src_lengths, config) -> tokens [B, L]
    attention: Callable[..., Any] | None  # (model, params, src, src_lengths, tgt_in) -> [B,T,S]
    vocab_fields: Callable[[dict], dict]


def _rnn_adapter() -> Seq2SeqAdapter:
    from zoo.data.vocab import BOS_ID, EOS_ID
    from zoo.rnn.generate import generate

    def init(model, rngs, batch):
        return model.init(rngs, batch["src"], batch["src_lengths"], batch["tgt_in"])

    def forward(model, variables, batch, deterministic, rngs):
        return model.apply(variables, batch["src"], batch["src_lengths"], batch["tgt_in"],
                           deterministic=deterministic, rngs=rngs).logits

    def decode(model, params, src, src_lengths, config):
        options = _search_options(config)
        out = generate(model, {"params": params}, src, src_lengths, method=config.eval.method,
                       max_len=config.eval.max_decode_len, bos_id=BOS_ID, eos_id=EOS_ID,
                       **options)
        return out.best().tokens if config.eval.method == "beam" else out.tokens

    def attention(model, params, src, src_lengths, tgt_in):
        return model.apply({"params": params}, src, src_lengths, tgt_in).attention

    return Seq2SeqAdapter(init, forward, decode, attention,
                          lambda v: {"src_vocab_size": v["src"], "tgt_vocab_size": v["tgt"]})


def _transformer_adapter() -> Seq2SeqAdapter:
    from zoo.data.vocab import BOS_ID, EOS_ID
    from zoo.transformer.generate import translate

    def init(model, rngs, batch):
        return model.init(rngs, batch["src"], batch["tgt_in"], src_lengths=batch["src_lengths"])

    def forward(model, variables, batch, deterministic, rngs):
        return model.apply(variables, batch["src"], batch["tgt_in"],
                           src_lengths=batch["src_lengths"], deterministic=deterministic,
                           rngs=rngs).logits

    def decode(model, params, src, src_lengths, config):
        out = translate(model, params, src, src_lengths, max_len=config.eval.max_decode_len,
                        bos_id=BOS_ID, eos_id=EOS_ID, method=config.eval.method,
                        **_search_options(config))
        return out.best().tokens if config.eval.method == "beam" else out.tokens

    def vocab(v):
        if v["src"] == v["tgt"]:
            return {"vocab_size": v["tgt"], "src_vocab_size": None}
        return {"vocab_size": v["tgt"], "src_vocab_size": v["src"], "share_embeddings": False}

    return Seq2SeqAdapter(init, forward, decode, None, vocab)


def _search_options(config) -> dict:
    if config.eval.method == "beam":
        return {"beam_size": config.eval.beam_size, "length_penalty": config.eval.length_penalty}
    return {}


def seq2seq_adapter(module_cls) -> Seq2SeqAdapter:
    from zoo.rnn import Seq2Seq
    from zoo.transformer import EncoderDecoder

    adapters = {Seq2Seq: _rnn_adapter, EncoderDecoder: _transformer_adapter}
    if module_cls not in adapters:
        raise ValueError(f"family 'seq2seq' cannot train {module_cls.__name__}; "
                         f"it trains {[c.__name__ for c in adapters]}")
    return adapters[module_cls]()


def _eval_loss(params, data, eval_step) -> dict:
    """Loss-based metrics (nll, perplexity, token accuracy) over the eval batches."""
    sums = None
    for batch in data.eval_batches():
        m = eval_step(params, batch)
        sums = m if sums is None else jax.tree.map(jnp.add, sums, m)
    return metrics_lib.summarize(jax.device_get(sums)) if sums is not None else {}


# --- seq2seq ----------------------------------------------------------------------------------

def _seq2seq_dummy_batch(config) -> dict:
    """A two-row batch with the configured lengths: all ``init`` needs is the shapes."""
    src = np.full((2, config.data.max_src_len), 4, np.int32)
    tgt = np.full((2, config.data.max_tgt_len), 4, np.int32)
    lengths = np.asarray([config.data.max_src_len, 1], np.int32)
    return {"src": src, "src_lengths": lengths, "tgt_in": tgt, "tgt_out": tgt,
            "tgt_lengths": np.asarray([config.data.max_tgt_len, 1], np.int32)}


def _supervised_state(variables_fn):
    def init_state(model, config, rng):
        params_rng, dropout_rng, state_rng = jax.random.split(rng, 3)
        variables = variables_fn(model, config, {"params": params_rng, "dropout": dropout_rng})
        tx, _ = optim.make_optimizer(config.optim)
        return TrainState.create(variables["params"], tx, state_rng)

    return init_state


def _seq2seq_variables(model, config, rngs):
    return seq2seq_adapter(type(model)).init(model, rngs, _seq2seq_dummy_batch(config))


def _seq2seq_loss(model, config):
    smoothing = config.optim.label_smoothing
    adapter = seq2seq_adapter(type(model))

    def loss_fn(params, batch, rng, deterministic):
        logits = adapter.forward(model, {"params": params}, batch, deterministic,
                                 {"dropout": rng})  # [B, T, V]
        t = batch["tgt_out"].shape[1]
        weights = (jnp.arange(t)[None, :] < batch["tgt_lengths"][:, None]).astype(jnp.float32)
        loss, tokens = losses.cross_entropy(logits, batch["tgt_out"], weights, smoothing)
        nll, _ = losses.cross_entropy(logits, batch["tgt_out"], weights, 0.0)
        correct = losses.token_accuracy(logits, batch["tgt_out"], weights) * tokens
        return loss, {"nll_sum": nll * tokens, "tokens": tokens, "correct": correct}

    return loss_fn


def _seq2seq_evaluate(model, params, data, config, eval_step, *, workdir, step):
    result = _eval_loss(params, data, eval_step)

    adapter = seq2seq_adapter(type(model))
    hypotheses, references, sources, first = [], [], [], None
    for src, src_lengths, refs, src_texts in data.eval_decode_batches(config.eval.num_examples):
        tokens = np.asarray(adapter.generate(model, params, src, src_lengths, config))  # [B, L]
        hypotheses += [data.detokenize(row) for row in tokens]
        references += refs
        sources += src_texts
        if first is None:
            first = (src, src_lengths, tokens)
    main = jax.process_index() == 0  # every process decodes; one prints and draws
    if hypotheses:
        result.update(data.score(hypotheses, references))
        for i in range(min(3, len(hypotheses)) if main else 0):
            print(f"  src: {sources[i]!r}\n  ref: {references[i]!r}\n  hyp: {hypotheses[i]!r}")
    if config.eval.num_heatmaps and adapter.attention is not None and first is not None:
        _heatmaps(model, params, adapter, data, first, workdir, step, config.eval.num_heatmaps,
                  draw=main)
    return result


def _heatmaps(model, params, adapter, data, first, workdir, step, count, *, draw=True):
    """Attention of the model over its own decoded outputs, as in Bahdanau et al. Fig. 3.

    Every process computes the weights (the parameters may span all of them); only a
    process with ``draw`` writes the pictures."""
    from zoo.data.vocab import BOS_ID, EOS_ID

    src, src_lengths, tokens = first
    # The longest sources of the batch make the most telling pictures.
    pick = np.argsort(-np.asarray(src_lengths), kind="stable")[: min(count, len(src))]
    src, src_lengths, tokens = np.asarray(src)[pick], np.asarray(src_lengths)[pick], tokens[pick]
    count = len(pick)
    tgt_in = np.concatenate([np.full((count, 1), BOS_ID, np.int32), tokens[:, :-1]], axis=1)
    weights = np.asarray(adapter.attention(model, params, src, src_lengths,
                                           tgt_in))  # [n, T, S]
    if not draw:
        return
    folder = os.path.join(workdir, "attention")
    os.makedirs(folder, exist_ok=True)
    for i in range(count):
        src_tokens = [data.src_tokenizer.decode([int(t)]) or "·"
                      for t in src[i, : src_lengths[i]]]
        out_ids = [int(t) for t in tokens[i]]
        end = out_ids.index(EOS_ID) + 1 if EOS_ID in out_ids else len(out_ids)
        tgt_tokens = [data.tokenizer.decode([t]) or "</s>" for t in out_ids[:end]]
        plots.plot_attention(os.path.join(folder, f"example{i}.png"), weights[i], src_tokens,
                             tgt_tokens, title=f"step {step}")


# --- decoder-only LM ------------------------------------------------------------------------

def _lm_variables(model, config, rngs):
    return model.init(rngs, np.full((2, config.data.max_tgt_len), 4, np.int32))


def _lm_loss(model, config):
    smoothing = config.optim.label_smoothing

    def loss_fn(params, batch, rng, deterministic):
        kwargs = {}
        if "segment_ids" in batch:
            kwargs["segment_ids"] = batch["segment_ids"]
        logits = model.apply({"params": params}, batch["inputs"], deterministic=deterministic,
                             rngs={"dropout": rng}, **kwargs).logits  # [B, T, V]
        weights = batch["weights"].astype(jnp.float32)  # [B, T]
        loss, tokens = losses.cross_entropy(logits, batch["targets"], weights, smoothing)
        nll, _ = losses.cross_entropy(logits, batch["targets"], weights, 0.0)
        correct = losses.token_accuracy(logits, batch["targets"], weights) * tokens
        return loss, {"nll_sum": nll * tokens, "tokens": tokens, "correct": correct}

    return loss_fn


def _lm_evaluate(model, params, data, config, eval_step, *, workdir, step):
    result = _eval_loss(params, data, eval_step)
    samples = _lm_samples(model, params, data, config, step)  # all processes take part
    for text in samples if jax.process_index() == 0 else ():
        print(f"  sample: {text!r}")
    return result


def _lm_samples(model, params, data, config, step, count: int = 3) -> list[str]:
    """A few samples from a one-token prompt (<bos>), temperature 0.8, keyed by the step."""
    from zoo.data.vocab import BOS_ID, EOS_ID
    from zoo.transformer.generate import generate_lm

    prompt = np.full((count, 1), BOS_ID, np.int32)
    out = generate_lm(model, params, prompt, max_new_tokens=config.eval.max_decode_len,
                      eos_id=EOS_ID, method="sample", temperature=0.8,
                      key=jax.random.fold_in(jax.random.PRNGKey(config.seed), step))
    return [data.detokenize(row) for row in np.asarray(out.tokens)]


def _supervised_summary(sums: dict, last: dict, window: int, seconds: float) -> dict:
    return {
        "loss": float(sums["loss"]) / window,
        **metrics_lib.summarize(sums),
        "learning_rate": float(last["learning_rate"]),
        "grad_norm": float(sums["grad_norm"]) / window,
        "tokens_per_sec": float(sums["tokens"]) / max(seconds, 1e-9),
    }


def sharded_eval_step(eval_step):
    """``eval_step(params, batch)`` jitted with explicit shardings: the parameters stay where
    they are (sharded by the mesh rules), the batch and the metrics are replicated, so
    evaluation batches need not divide the mesh and every process sees the same metrics."""
    compiled = {}

    def run(params, batch):
        first = jax.tree.leaves(params)[0].sharding
        if first not in compiled:
            whole = NamedSharding(first.mesh, PartitionSpec()) if isinstance(
                first, NamedSharding) else first
            compiled[first] = jax.jit(
                eval_step, in_shardings=(jax.tree.map(lambda x: x.sharding, params), whole),
                out_shardings=whole)
        return compiled[first](params, batch)

    return run


def _supervised_steps(make_loss, evaluate):
    """(make_train_step, make_evaluate) for a family defined by a loss and an evaluation."""

    def make_train_step(model, config):
        _, schedule = optim.make_optimizer(config.optim)
        return state_lib.make_train_step(make_loss(model, config), schedule)

    def make_evaluate(model, config):
        eval_step = sharded_eval_step(state_lib.make_eval_step(make_loss(model, config)))

        def run(state, data, *, workdir, step):
            return evaluate(model, state.params, data, config, eval_step, workdir=workdir,
                            step=step)

        return run

    return make_train_step, make_evaluate


def _seq2seq_family() -> Family:
    from zoo.train import data as data_lib  # noqa: PLC0415 -- data imports heavy deps

    make_train_step, make_evaluate = _supervised_steps(_seq2seq_loss, _seq2seq_evaluate)
    return Family(
        data_lib.seq2seq_data,
        lambda cls, vocab: seq2seq_adapter(cls).vocab_fields(vocab),
        _supervised_state(_seq2seq_variables),
        make_train_step, _supervised_summary, make_evaluate,
    )


def _lm_family() -> Family:
    from zoo.train import data as data_lib  # noqa: PLC0415 -- data imports heavy deps

    make_train_step, make_evaluate = _supervised_steps(_lm_loss, _lm_evaluate)
    return Family(
        data_lib.lm_data,
        lambda cls, vocab: {"vocab_size": vocab["tgt"]},
        _supervised_state(_lm_variables),
        make_train_step, _supervised_summary, make_evaluate,
    )


def _vae_family() -> Family:
    from zoo.generative.family import vae_family  # noqa: PLC0415 -- it imports this module

    return vae_family()


def _gan_family() -> Family:
    from zoo.generative.family import gan_family  # noqa: PLC0415 -- it imports this module

    return gan_family()


_FAMILIES: dict[str, Callable[[], Family]] = {
    "seq2seq": _seq2seq_family, "lm": _lm_family, "vae": _vae_family, "gan": _gan_family,
}


def register(name: str, make: Callable[[], Family]) -> None:
    """Adds a family (built lazily by ``make``); a taken name raises."""
    if name in _FAMILIES:
        raise ValueError(f"family {name!r} is already registered")
    _FAMILIES[name] = make


def names() -> list[str]:
    return sorted(_FAMILIES)


def get(name: str) -> Family:
    if name not in _FAMILIES:
        raise ValueError(f"config key 'family' is {name!r}; allowed: {names()}")
    return _FAMILIES[name]()
