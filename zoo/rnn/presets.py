"""Named Seq2Seq presets, registered in `zoo.registry` when `zoo.rnn` is imported.

CPU-sized presets (registered; a few hundred thousand parameters with the
default 128-symbol vocabularies, so tests and demos run on a laptop):

    seq2seq_plain_rnn       vanilla RNN (SimpleCell) encoder-decoder, no attention
    seq2seq_plain_lstm      Sutskever et al. (2014) shape: stacked LSTMs, no attention
    seq2seq_plain_gru       the same with GRUs
    seq2seq_luong_lstm      Luong et al. (2015): stacked LSTMs, 'general' score, input feeding
    seq2seq_luong_dot_lstm  Luong's 'dot' score without input feeding (the cheapest attention)
    seq2seq_bahdanau_gru    Bahdanau et al. (2015): bidirectional GRU encoder, additive
                            score against s_{t-1}, context into the RNN, dense bridge

Paper sizes (`PAPER_CONFIGS`, *not* registered: 100M-400M parameters, too big
for a registry-wide init test on CPU; build them with `Seq2Seq(PAPER_CONFIGS[name])`):

    sutskever2014  4 layers x 1000 LSTM, 1000-d embeddings, 160k/80k vocabularies
    luong2015      4 layers x 1000 LSTM, 1000-d embeddings, 50k vocabularies, 'general'
                   score with input feeding, dropout 0.2
    bahdanau2015   1000-unit GRUs (bidirectional encoder), 620-d embeddings,
                   30k vocabularies, additive score with a 1000-unit hidden layer
"""

from __future__ import annotations

from zoo import registry
from zoo.rnn.config import Seq2SeqConfig
from zoo.rnn.seq2seq import Seq2Seq

PRESETS: dict[str, Seq2SeqConfig] = {
    "seq2seq_plain_rnn": Seq2SeqConfig(cell="rnn", num_layers=1, embed_dim=32, hidden_dim=64),
    "seq2seq_plain_lstm": Seq2SeqConfig(cell="lstm", num_layers=2, embed_dim=32, hidden_dim=64),
    "seq2seq_plain_gru": Seq2SeqConfig(cell="gru", num_layers=2, embed_dim=32, hidden_dim=64),
    "seq2seq_luong_lstm": Seq2SeqConfig(
        cell="lstm", num_layers=2, embed_dim=32, hidden_dim=64, attention="general",
        style="luong", input_feeding=True),
    "seq2seq_luong_dot_lstm": Seq2SeqConfig(
        cell="lstm", num_layers=1, embed_dim=32, hidden_dim=64, attention="dot", style="luong"),
    "seq2seq_bahdanau_gru": Seq2SeqConfig(
        cell="gru", num_layers=1, embed_dim=32, hidden_dim=64, bidirectional=True,
        encoder_hidden_dim=64, attention="additive", style="bahdanau", bridge="dense"),
}

PAPER_CONFIGS: dict[str, Seq2SeqConfig] = {
    "sutskever2014": Seq2SeqConfig(
        src_vocab_size=160_000, tgt_vocab_size=80_000, cell="lstm", num_layers=4,
        embed_dim=1000, hidden_dim=1000),
    "luong2015": Seq2SeqConfig(
        src_vocab_size=50_000, tgt_vocab_size=50_000, cell="lstm", num_layers=4,
        embed_dim=1000, hidden_dim=1000, attention="general", style="luong",
        input_feeding=True, dropout_rate=0.2),
    "bahdanau2015": Seq2SeqConfig(
        src_vocab_size=30_000, tgt_vocab_size=30_000, cell="gru", num_layers=1,
        embed_dim=620, hidden_dim=1000, bidirectional=True, encoder_hidden_dim=1000,
        attention="additive", attention_hidden=1000, style="bahdanau", bridge="dense"),
}

for _name, _config in PRESETS.items():
    registry.register(_name, _config, Seq2Seq)
