"""Transformer on real German -> English sentence pairs (Debian package trans-de-en).

A small post-LN Transformer with the paper's recipe (Adam 0.9/0.98/1e-9, the
rsqrt warm-up schedule, label smoothing 0.1, shared sentencepiece vocabulary
and tied embeddings) sized for a CPU; BLEU by sacreBLEU from beam search.

    make data   # once: installs trans-de-en
    python train.py --config configs/transformer_de_en.py --workdir runs/de_en
    python train.py --config configs/transformer_de_en.py:tiny --workdir /tmp/de_en_tiny
"""

from zoo.train.config import base_config


def get_config(arg: str | None = None):
    c = base_config()
    c.family = "seq2seq"
    c.model.name = "transformer_small"
    c.model.dropout_rate = 0.1
    c.model.max_len = 64
    c.data.dataset = "de_en/sentences"
    c.data.fields = ("de", "en")
    c.data.tokenizer = "sentencepiece"
    c.data.vocab_size = 4000
    c.data.batch_size = 64
    c.data.eval_batch_size = 128
    c.data.max_src_len = 48
    c.data.max_tgt_len = 48
    c.data.buckets = (16, 32)
    c.optim.schedule = "rsqrt"
    c.optim.d_model = 128
    c.optim.learning_rate = 2.0  # multiplier of the paper's d_model^-0.5 schedule
    c.optim.warmup_steps = 1000
    c.optim.label_smoothing = 0.1
    c.train.num_train_steps = 6000
    c.train.log_every = 100
    c.train.eval_every = 2000
    c.train.checkpoint_every = 1000
    c.train.best_metric = "bleu"
    c.eval.method = "beam"
    c.eval.beam_size = 4
    c.eval.max_decode_len = 48
    c.eval.num_examples = 539  # the whole validation split
    if arg == "tiny":
        make_tiny(c)
    elif arg:
        raise ValueError(f"config argument {arg!r} unknown; allowed: 'tiny'")
    return c


def make_tiny(c):
    """A tiny Transformer on a few de-en batches: the smoke-test variant of both de-en configs."""
    c.model.name = "transformer_tiny"
    c.model.max_len = 64
    # The same lengths in both configs' tiny variants: their evaluation programs are then
    # identical and compile once (the tests share XLA's compilation cache).
    c.data.max_src_len = c.data.max_tgt_len = 48
    c.data.buckets = (16, 32)
    c.data.vocab_size = 300
    c.data.tokenizer_records = 2000
    c.data.batch_size = 8
    c.data.eval_batch_size = 16
    c.optim.d_model = 32
    c.optim.warmup_steps = 10
    c.train.num_train_steps = 2
    c.train.log_every = 1
    c.train.eval_every = 2
    c.train.checkpoint_every = 2
    c.train.progress_bar = False
    c.eval.num_examples = 16
    c.eval.max_decode_len = 8
