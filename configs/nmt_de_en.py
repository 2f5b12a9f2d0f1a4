"""German -> English sentences: the four encoder-decoders of the lineage on real text.

The data is zoo's ``de_en/sentences`` (Debian ``trans-de-en``: short everyday
sentence pairs). Pairs are held out by a hash of the German sentence: 2.5%
for validation and 2.5% for test (18.7k training pairs, 539 validation pairs).
Sentences are short (about 8 words), so the length bounds cut nothing.

    make data   # once: installs trans-de-en
    python train.py --config configs/nmt_de_en.py --workdir runs/de_en_transformer
    python train.py --config configs/nmt_de_en.py:bahdanau --workdir runs/de_en_bahdanau
    python train.py --config configs/nmt_de_en.py:luong --workdir runs/de_en_luong
    python train.py --config configs/nmt_de_en.py:plain --workdir runs/de_en_plain
    python train.py --workdir runs/de_en_transformer --eval_only   # test split, best step

Argument syntax and the shared recipe: ``configs/_nmt.py``.
"""

from configs import _nmt


def get_config(arg: str | None = None):
    model, size = _nmt.parse(arg)
    c = _nmt.translation_config(model, dataset="de_en/sentences", fields=("de", "en"))
    c.data.vocab_size = 4000
    c.data.max_src_len = 64
    c.data.max_tgt_len = 64
    c.data.buckets = (16, 32)  # and max_src_len / max_tgt_len
    c.data.batch_size = 64
    if model == "transformer":
        c.model.max_len = 96
    if model == "transformer":
        c.train.num_train_steps = 2400  # 8 epochs
        c.train.eval_every = c.train.checkpoint_every = 600
    else:  # the recurrent models step slower on a CPU: 3.4 epochs
        c.train.num_train_steps = 1000
        c.train.eval_every = c.train.checkpoint_every = 250
    c.eval.max_decode_len = 64
    c.eval.num_examples = 539  # the whole validation split
    if size == "tiny":
        _nmt.make_tiny(c, model)
    return c
