"""The experiment-config schema and its validation.

An experiment config (``configs/*.py``: ``get_config(arg) -> ConfigDict``)
overrides a subset of :func:`base_config`. Every key must exist in the base
(or, under ``model``, be a field of the model preset's config dataclass), and
types must match, so a typo or a wrong type fails before anything compiles,
naming the key.
"""

from __future__ import annotations

import jax.numpy as jnp
import ml_collections

from zoo import registry


def base_config() -> ml_collections.ConfigDict:
    c = ml_collections.ConfigDict()
    c.family = "seq2seq"  # seq2seq | lm | vae | gan | ...: how batches feed the model (families/)
    c.seed = 0

    # The model: a registry preset plus field overrides (checked against its dataclass).
    c.model = ml_collections.ConfigDict({"name": "seq2seq_luong_lstm"})

    c.data = ml_collections.ConfigDict()
    # A zoo builder name ('generated_tasks/dates', 'fashion_mnist', ...), 'ring_of_gaussians'
    # (generated 2-D points, zoo/data/ring.py) or any prepared TFDS name.
    c.data.dataset = "date"
    c.data.data_dir = ""  # "" -> <workdir>/data
    c.data.batch_size = 64  # global: split over processes and the mesh's batch axes
    c.data.eval_batch_size = 256
    c.data.max_src_len = 40
    c.data.max_tgt_len = 16
    c.data.num_train = 20000  # generated tasks and points: examples in the train split
    # Examples evaluated: the first num_eval of the validation split (generated tasks and
    # points: the size of the held-out split).
    c.data.num_eval = 1000
    c.data.vocab_size = 8000  # subword vocabulary for real text
    # "char" | "sentencepiece" | "marian" (an imported Opus-MT model's files, with
    # data.dataset "" until it is given data: zoo/train/imports.py)
    c.data.tokenizer = "char"
    c.data.tokenizer_records = 200_000  # train records the tokenizer or vocabulary learns from
    # Record keys: (source, target); (text,) for an LM; (image,) or (point,) for arrays.
    c.data.fields = ("source", "target")
    c.data.buckets = ()  # padded lengths to bucket by; () pads every batch to the maximum

    c.optim = ml_collections.ConfigDict()
    c.optim.schedule = "cosine"  # rsqrt | cosine | linear | constant
    c.optim.learning_rate = 3e-3  # peak; for rsqrt a multiplier of the paper's formula
    c.optim.warmup_steps = 100
    c.optim.end_lr_ratio = 0.01
    c.optim.d_model = 512  # used by the rsqrt schedule only
    c.optim.num_train_steps = 2000  # the decay horizon; kept equal to train.num_train_steps
    c.optim.b1 = 0.9
    c.optim.b2 = 0.98
    c.optim.eps = 1e-9
    c.optim.weight_decay = 0.0
    c.optim.clip_grad_norm = 1.0
    c.optim.grad_accum_steps = 1
    c.optim.label_smoothing = 0.0
    # GAN: the discriminator's learning rate over the generator's (learning_rate); 1 is one
    # rate for both, > 1 the two time-scale update rule (TTUR, Heusel et al. 2017).
    c.optim.d_lr_ratio = 1.0

    c.train = ml_collections.ConfigDict()
    c.train.num_train_steps = 2000
    c.train.log_every = 50
    c.train.eval_every = 500
    c.train.checkpoint_every = 500
    c.train.max_to_keep = 3
    c.train.best_metric = "exact_match"
    c.train.best_mode = "max"
    c.train.progress_bar = True
    # A workdir (or its checkpoints/ folder) to start from when this workdir has no
    # checkpoint yet: the newest good step there is restored onto this run's devices.
    c.train.restore_from = ""
    # (a, b): a jax.profiler trace of train steps a..b (1-based) in <workdir>/profile/.
    c.train.profile_steps = ()
    c.train.profile_python = False  # also trace every Python call (large, slow to write)
    # Peak FLOP/s of one device, for model-FLOPs utilisation; 0 measures a matmul once per
    # machine (zoo/train/telemetry.py) and caches it.
    c.train.peak_flops = 0.0

    # The device mesh and how the models' logical axes map onto it (zoo/sharding.py).
    c.mesh = ml_collections.ConfigDict()
    c.mesh.shape = (-1,)  # axis sizes; one -1 takes the remaining devices
    c.mesh.axes = ("data",)  # names: data, fsdp, tensor
    c.mesh.strategy = "dp"  # dp | fsdp | tp | fsdp_tp
    c.mesh.rules = ()  # extra (logical name, mesh axis or None) pairs, tried before the table
    # Devices the mesh spans: 0 every device (of every process); N the first N of this one
    # process, e.g. 1 to debug on one accelerator of a host or to keep the rest for other work.
    c.mesh.num_devices = 0

    c.eval = ml_collections.ConfigDict()
    c.eval.method = "greedy"  # greedy | beam
    c.eval.beam_size = 4
    c.eval.length_penalty = 0.6
    c.eval.max_decode_len = 16
    c.eval.num_examples = 1000  # examples decoded per evaluation
    c.eval.num_heatmaps = 3
    # Generative families: images drawn per evaluation, and how they are drawn.
    c.eval.num_samples = 64
    c.eval.sampler = "ddim"  # diffusion: ancestral (DDPM) | ddim
    c.eval.sample_steps = 100  # diffusion: denoising steps per sample (<= model.timesteps)
    c.eval.temperatures = (1.0, 0.7)  # flow: the prior's standard deviation per drawn grid
    # VAE: importance samples per test image of the IWAE bound on log p(x); 0 skips it.
    c.eval.iwae_samples = 0
    return c


def _check(section: ml_collections.ConfigDict, base: ml_collections.ConfigDict, path: str):
    for key, value in section.items():
        name = f"{path}{key}"
        if key not in base:
            raise ValueError(f"unknown config key {name!r}; allowed under "
                             f"{path.rstrip('.') or 'the top level'}: {sorted(base.keys())}")
        want = base[key]
        if isinstance(want, ml_collections.ConfigDict):
            if not isinstance(value, ml_collections.ConfigDict):
                raise TypeError(f"config key {name!r} must be a section, got {value!r}")
            _check(value, want, name + ".")
        elif want is not None and value is not None:
            ok = isinstance(value, type(want)) or (
                isinstance(want, tuple) and isinstance(value, list)) or (
                isinstance(want, float) and isinstance(value, int) and not isinstance(value, bool))
            if not ok:
                raise TypeError(f"config key {name!r} must be {type(want).__name__}, "
                                f"got {type(value).__name__} {value!r}")


def validate(config: ml_collections.ConfigDict) -> ml_collections.ConfigDict:
    """Checks every key and type; returns the base config with ``config`` merged in."""
    base = base_config()
    model = config.get("model", ml_collections.ConfigDict({"name": base.model.name}))
    rest = ml_collections.ConfigDict({k: v for k, v in config.items() if k != "model"})
    _check(rest, base, "")
    merged = base
    merged.update(rest)
    overrides = {k: v for k, v in model.items() if k != "name"}
    registry.make_config(model.get("name", base.model.name), **overrides)  # raises on bad keys
    merged.model = model
    profile = tuple(merged.train.profile_steps)
    if profile and not (len(profile) == 2 and all(isinstance(s, int) for s in profile)
                        and 1 <= profile[0] <= profile[1] <= merged.train.num_train_steps):
        raise ValueError(f"config key 'train.profile_steps' is {profile!r}; allowed: () or "
                         f"(first, last) steps with 1 <= first <= last <= "
                         f"train.num_train_steps = {merged.train.num_train_steps}")
    if merged.optim.num_train_steps != merged.train.num_train_steps:
        merged.optim.num_train_steps = merged.train.num_train_steps
    return merged


def model_config(config: ml_collections.ConfigDict, **from_data):
    """The model's dataclass config from ``config.model``.

    ``from_data`` are fields the data decides (vocabulary sizes); they win over
    the config. Dtype fields may be given as strings ("bfloat16").
    """
    overrides = {k: v for k, v in config.model.items() if k != "name"}
    overrides.update(from_data)
    preset = registry.get(config.model.name).config
    for key, value in overrides.items():
        if isinstance(value, str) and "dtype" in key:
            overrides[key] = jnp.dtype(value)
        elif isinstance(value, list) and isinstance(getattr(preset, key, None), tuple):
            overrides[key] = tuple(value)
    return registry.make_config(config.model.name, **overrides)
