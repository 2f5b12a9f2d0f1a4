"""The default main job: Luong attention LSTM seq2seq on date normalisation.

Many human date formats ("Mon 9 Jan 1984", "11/22/10", "JANUARY 19 2038")
-> ISO 8601 ("1984-01-09"), characters in and out. Runs on CPU in a few
minutes and reaches >= 99% exact match on held-out dates.

    python train.py --config configs/date_seq2seq.py --workdir runs/date_seq2seq
    python train.py --config configs/date_seq2seq.py:tiny --workdir /tmp/date_tiny
    python train.py --config configs/date_seq2seq.py:plain --workdir runs/date_plain
"""

from zoo.train.config import base_config


def get_config(arg: str | None = None):
    c = base_config()
    c.family = "seq2seq"
    c.model.name = "seq2seq_luong_lstm"
    c.model.hidden_dim = 128
    c.model.embed_dim = 32
    c.data.dataset = "generated_tasks/dates"
    c.data.num_train = 20000
    c.data.num_eval = 1000
    c.data.batch_size = 64
    c.data.max_src_len = 32
    c.data.max_tgt_len = 11  # "YYYY-MM-DD" + <eos>
    c.optim.schedule = "cosine"
    c.optim.learning_rate = 3e-3
    c.optim.warmup_steps = 100
    c.train.num_train_steps = 1500
    c.train.log_every = 100
    c.train.eval_every = 500
    c.train.checkpoint_every = 500
    c.eval.max_decode_len = 12
    c.eval.num_examples = 1000
    variants = {
        None: lambda: None,
        "": lambda: None,
        "plain": lambda: _plain(c),
        "tiny": lambda: _tiny(c),
    }
    if arg not in variants:
        raise ValueError(f"config argument {arg!r} unknown; allowed: "
                         f"{sorted(k for k in variants if k)}")
    variants[arg]()
    return c


def _plain(c):
    c.model.name = "seq2seq_plain_lstm"


def _tiny(c):
    c.model.hidden_dim = 32
    c.model.embed_dim = 16
    c.data.num_train = 256
    c.data.num_eval = 32
    c.data.batch_size = 16
    c.data.eval_batch_size = 32
    c.train.num_train_steps = 6
    c.train.log_every = 2
    c.train.eval_every = 3
    c.train.checkpoint_every = 3
    c.train.progress_bar = False
    c.eval.num_examples = 32
    c.eval.num_heatmaps = 1
