"""Spanish -> English Bible verses: the four encoder-decoders of the lineage on real text.

The data is zoo's ``en_es_bible`` (Debian ``sword-text-sparv`` -> ``sword-text-kjv``:
Reina-Valera 1909 against the King James Version, aligned by verse). Whole
chapters are held out by a hash of the chapter's name: 2% for validation and
2% for test (29,763 / 495 / 826 verses), so no test verse has a neighbour
in training. Verses are long (22 Spanish words on average, up to 64 in test),
so the length bounds are wide enough that no test source is cut.

    make data   # once: installs the sword texts
    python train.py --config configs/nmt_es_en.py --workdir runs/es_en_transformer
    python train.py --config configs/nmt_es_en.py:bahdanau --workdir runs/es_en_bahdanau
    python train.py --config configs/nmt_es_en.py:luong --workdir runs/es_en_luong
    python train.py --config configs/nmt_es_en.py:plain --workdir runs/es_en_plain
    python train.py --workdir runs/es_en_transformer --eval_only   # test split, best step

Argument syntax and the shared recipe: ``configs/_nmt.py``.
"""

from configs import _nmt


def get_config(arg: str | None = None):
    model, size = _nmt.parse(arg)
    c = _nmt.translation_config(model, dataset="en_es_bible", fields=("es", "en"))
    c.data.vocab_size = 4000
    c.data.max_src_len = 128
    c.data.max_tgt_len = 128
    c.data.buckets = (32, 48, 64, 96)  # and max_src_len / max_tgt_len
    c.data.batch_size = 64
    if model == "transformer":
        c.model.max_len = 160
        # A short run (2,200 steps, 4.7 epochs, about 1 h 45 min on one core): the full
        # learning rate and less dropout than at convergence.
        c.model.dropout_rate = 0.1
        c.optim.learning_rate = 1.5e-3
        c.optim.warmup_steps = 300
    if model == "transformer":
        c.train.num_train_steps = 2200
        c.train.eval_every = c.train.checkpoint_every = 550
    else:
        # A recurrent step is about twice the Transformer's on a CPU (the time steps run
        # one after another): 1,000 steps (2.2 epochs) is what fits in two hours.
        c.optim.warmup_steps = 200
        c.train.num_train_steps = 1000
        c.train.eval_every = c.train.checkpoint_every = 250
    c.eval.max_decode_len = 128
    c.eval.num_examples = 495  # the whole validation split
    if size == "tiny":
        _nmt.make_tiny(c, model)
    return c
