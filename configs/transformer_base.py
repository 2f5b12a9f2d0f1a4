"""Transformer-base with the hyperparameters of "Attention Is All You Need" (for accelerators).

d_model 512, 6 + 6 layers, 8 heads, d_ff 2048, P_drop 0.1, label smoothing 0.1,
Adam (0.9, 0.98, 1e-9), lr = d_model^-0.5 * min(step^-0.5, step * 4000^-1.5),
a shared 37,000-token subword vocabulary with tied embeddings, 100k steps.
The paper batches ~25k source + 25k target tokens; 256 x 100-token rows is
close. Point ``data.dataset`` at a prepared ``wmt14_translate/de-en`` in your
``data.data_dir`` for the paper's data; the default is the local corpus.

    python train.py --config configs/transformer_base.py --workdir runs/base \\
        --config.data.dataset=wmt14_translate/de-en --config.data.data_dir=~/tensorflow_datasets
    python train.py --config configs/transformer_base.py:tiny --workdir /tmp/base_tiny
"""

from configs import _nmt
from zoo.train.config import base_config


def get_config(arg: str | None = None):
    c = base_config()
    c.family = "seq2seq"
    c.model.name = "transformer_base"
    c.model.max_len = 256
    c.data.dataset = "de_en/sentences"
    c.data.fields = ("de", "en")
    c.data.tokenizer = "sentencepiece"
    c.data.vocab_size = 37000
    c.data.batch_size = 256
    c.data.eval_batch_size = 256
    c.data.max_src_len = 100
    c.data.max_tgt_len = 100
    c.data.buckets = (32, 64)
    c.optim.schedule = "rsqrt"
    c.optim.d_model = 512
    c.optim.learning_rate = 1.0
    c.optim.warmup_steps = 4000
    c.optim.label_smoothing = 0.1
    c.optim.clip_grad_norm = 0.0
    c.train.num_train_steps = 100_000
    c.train.log_every = 100
    c.train.eval_every = 5000
    c.train.checkpoint_every = 5000
    c.train.best_metric = "bleu"
    c.eval.method = "beam"
    c.eval.beam_size = 4
    c.eval.length_penalty = 0.6
    c.eval.max_decode_len = 150
    if arg == "tiny":
        # Same recipe, tiny model and data, for the smoke test.
        _nmt.make_tiny(c, "transformer")
    elif arg:
        raise ValueError(f"config argument {arg!r} unknown; allowed: 'tiny'")
    return c
