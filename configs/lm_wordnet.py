"""Decoder-only Transformer LM on real English text: WordNet glosses (Debian wordnet-base).

Character-level, documents packed into 128-token rows with segment ids; a
modern small LM (pre-RMSNorm, rotary, SwiGLU, GQA). Evaluation reports
validation perplexity and prints samples.

    make data   # once: installs wordnet-base
    python train.py --config configs/lm_wordnet.py --workdir runs/lm_wordnet
    python train.py --config configs/lm_wordnet.py:tiny --workdir /tmp/lm_tiny
"""

from zoo.train.config import base_config


def get_config(arg: str | None = None):
    c = base_config()
    c.family = "lm"
    c.model.name = "lm_small"
    c.data.dataset = "wordnet_glosses"
    c.data.fields = ("text",)
    c.data.tokenizer = "char"
    c.data.batch_size = 32
    c.data.eval_batch_size = 64
    c.data.max_tgt_len = 128  # packed row length
    c.data.num_eval = 1160
    c.optim.schedule = "cosine"
    c.optim.learning_rate = 3e-3
    c.optim.warmup_steps = 100
    c.optim.weight_decay = 0.01
    # About 8 minutes on 2 CPU cores (the README's result); raise it on an accelerator.
    c.train.num_train_steps = 1000
    c.train.log_every = 100
    c.train.eval_every = 250
    c.train.checkpoint_every = 250
    c.train.best_metric = "perplexity"
    c.train.best_mode = "min"
    c.eval.max_decode_len = 100
    if arg == "tiny":
        c.model.name = "lm_tiny"
        c.data.batch_size = 8
        c.data.eval_batch_size = 8
        c.data.max_tgt_len = 32
        c.data.num_eval = 16
        c.data.tokenizer_records = 2000
        c.train.num_train_steps = 2
        c.train.log_every = 1
        c.train.eval_every = 2
        c.train.checkpoint_every = 2
        c.train.progress_bar = False
        c.eval.max_decode_len = 8
    elif arg:
        raise ValueError(f"config argument {arg!r} unknown; allowed: 'tiny'")
    return c
