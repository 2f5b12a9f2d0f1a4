"""The low-resource translation recipes shared by ``nmt_es_en.py`` and ``nmt_de_en.py``.

One config file per task; its argument picks the model and, after a comma,
the ``tiny`` smoke-test size:

    configs/nmt_es_en.py                   the Transformer (the default model)
    configs/nmt_es_en.py:bahdanau          bidirectional GRU encoder, additive attention
    configs/nmt_es_en.py:luong             stacked LSTMs, general score, input feeding
    configs/nmt_es_en.py:plain             stacked LSTMs, one context vector, no attention
    configs/nmt_es_en.py:plain,tiny        any model at the tiny size (tests)

The recipes follow what low-resource studies found to matter at 20k-30k
sentence pairs (Sennrich & Zhang 2019; Araabi & Monz 2020): a small joint
subword vocabulary, strong dropout, label smoothing, tied embeddings where the
model allows, a learning-rate warm-up well inside the run, and beam search.
Their numbers come from those studies, scaled to what one CPU core trains in
under two hours; they are not yet tuned on validation (only the beam size and
length penalty are, by ``benchmarks/nmt_decode_sweep.py``). The test split is
read by ``train.py --eval_only`` alone.
"""

from zoo.train.config import base_config

MODELS = ("transformer", "bahdanau", "luong", "plain")
SIZES = ("full", "tiny")


def parse(arg: str | None) -> tuple[str, str]:
    """'bahdanau,tiny' -> ('bahdanau', 'tiny'); '' or None -> ('transformer', 'full')."""
    parts = [p.strip() for p in (arg or "").split(",") if p.strip()]
    models = [p for p in parts if p in MODELS]
    sizes = [p for p in parts if p in SIZES]
    model, size = (models or ["transformer"])[0], (sizes or ["full"])[0]
    if len(models) > 1 or len(sizes) > 1 or len(models) + len(sizes) < len(parts):
        raise ValueError(f"config argument {arg!r} unknown; allowed: a model of {list(MODELS)} "
                         f"and/or 'tiny', comma-separated (e.g. 'bahdanau,tiny')")
    return model, size


def translation_config(model: str, *, dataset: str, fields: tuple[str, str]):
    """The full-size recipe of ``model`` on a translation dataset."""
    c = base_config()
    c.family = "seq2seq"
    c.data.dataset = dataset
    c.data.fields = fields
    c.data.tokenizer = "sentencepiece"
    c.data.eval_batch_size = 64
    c.train.log_every = 100
    c.train.best_metric = "bleu"
    c.train.max_to_keep = 4  # the 4 best by validation BLEU: what --average can average
    c.eval.method = "beam"
    c.eval.beam_size = 4
    c.eval.length_penalty = 0.6
    c.eval.num_heatmaps = 3
    c.optim.label_smoothing = 0.1
    c.optim.clip_grad_norm = 1.0
    if model == "transformer":
        c.model.name = "transformer_small"
        c.model.d_model = 256
        c.model.num_heads = 4
        c.model.d_ff = 1024
        c.model.num_encoder_layers = 3
        c.model.num_decoder_layers = 3
        c.model.norm_placement = "pre"
        c.model.dropout_rate = 0.2
        c.model.attention_dropout_rate = 0.1
        c.model.ffn_dropout_rate = 0.1
        c.optim.schedule = "cosine"
        c.optim.learning_rate = 1e-3
        c.optim.warmup_steps = 400
        c.optim.weight_decay = 1e-4
    else:
        c.model.name = {"bahdanau": "seq2seq_bahdanau_gru", "luong": "seq2seq_luong_lstm",
                        "plain": "seq2seq_plain_lstm"}[model]
        c.model.embed_dim = 256
        c.model.hidden_dim = 512
        c.model.num_layers = 1 if model == "bahdanau" else 2
        c.model.dropout_rate = 0.2
        c.optim.schedule = "cosine"
        c.optim.learning_rate = 1e-3
        c.optim.warmup_steps = 300
    return c


def make_tiny(c, model: str) -> None:
    """A few steps of a tiny model on a few batches: every path once, in seconds."""
    if model == "transformer":
        c.model.name = "transformer_tiny"
        for key in ("d_model", "num_heads", "d_ff", "num_encoder_layers", "num_decoder_layers"):
            if key in c.model:
                del c.model[key]  # the preset's sizes
        c.model.max_len = 64
    else:
        c.model.embed_dim = 16
        c.model.hidden_dim = 32
        c.model.num_layers = 1
    c.data.max_src_len = c.data.max_tgt_len = 48
    # One padded shape: each bucket is one more training step to compile (~4 s for the tiny
    # Transformer); bucketing itself is tested in tests/data/test_pipeline.py.
    c.data.buckets = ()
    c.data.vocab_size = 300
    c.data.tokenizer_records = 2000
    c.data.batch_size = 8
    c.data.eval_batch_size = 16
    c.data.num_eval = 32  # two evaluation batches: fewer padded shapes to compile
    c.optim.warmup_steps = 1
    c.train.num_train_steps = 2
    c.train.log_every = 1
    c.train.eval_every = 2
    c.train.checkpoint_every = 2
    c.train.progress_bar = False
    c.eval.num_examples = 16
    c.eval.max_decode_len = 8
    # Greedy: compiling beam search for every tiny model costs the suite ~15 s each; beam
    # search is exercised by transformer_base:tiny and the decoding and translate tests.
    c.eval.method = "greedy"
    c.eval.num_heatmaps = 1
