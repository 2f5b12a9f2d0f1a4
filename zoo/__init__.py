"""zoo: a JAX/Flax model zoo of the sequence-model lineage.

Importing ``zoo`` (or any part of it) imports the model packages, which
register their presets in ``zoo.registry``:

    import zoo
    model = zoo.registry.build("seq2seq_luong_lstm", src_vocab_size=64, tgt_vocab_size=64)

The training job lives in ``zoo.train`` (``train_and_evaluate``).
"""

from zoo import attention, decoding, generative, nn, registry, rnn, seq2seq, transformer

__all__ = ["attention", "decoding", "generative", "nn", "registry", "rnn", "seq2seq",
           "transformer"]
