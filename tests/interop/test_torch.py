"""zoo.interop.torch: torch modules' weights run in zoo give torch's outputs, and back.

Glossary: B batch, S source length, T target length, D model width, E RNN input width,
R RNN state width, L layers.

Every torch module is small and randomly initialised (biases too, so a misplaced bias
shows), in eval mode. Zoo params are never initialised: ``like`` is ``jax.eval_shape`` of
``init``, which is all ``from_torch`` needs. Each zoo model runs once, jitted (``_apply``).
"""

from dataclasses import replace

import jax
import jax.numpy as jnp
import numpy as np
import pytest
import torch
from flax.core import meta
from torch import nn

from zoo.attention import MultiHeadAttention
from zoo.interop.torch import config_fields, from_torch, to_torch
from zoo.rnn import RNNStack, Seq2Seq, Seq2SeqConfig
from zoo.transformer.config import TransformerConfig
from zoo.transformer.encoder_decoder import EncoderDecoder
from zoo.transformer.layers import DecoderLayer, EncoderLayer, LayerContext
from zoo.transformer.stack import stack_layer_params

B, S, T, D, HEADS, F, E, R = 2, 5, 4, 16, 2, 32, 5, 4
LENGTHS = np.array([S, 3], np.int32)  # [B] real source tokens; row 1 is padded
TOL = dict(rtol=1e-4, atol=1e-4)

torch.set_num_threads(1)  # the test machine's cores are shared


def _randomised(module: nn.Module, seed: int = 0) -> nn.Module:
    torch.manual_seed(seed)
    with torch.no_grad():
        for p in module.parameters():
            p.uniform_(-0.5, 0.5)
    return module.eval()


def _apply(module, params, *args, **kwargs):
    """``module.apply`` compiled as one program: measured cheaper here than running each
    op eagerly (which compiles every op on its own), and cached on disk across runs."""
    return jax.jit(lambda p, *a: module.apply({"params": p}, *a, **kwargs))(params, *args)


def _normal(*shape, seed=0) -> np.ndarray:
    return np.random.default_rng(seed).standard_normal(shape).astype(np.float32)


def _abstract(module, *args, **kwargs):
    """The params of ``module`` as shapes only: enough for ``like``, no init computed."""
    return jax.eval_shape(lambda: module.init(jax.random.key(0), *args, **kwargs))["params"]


def _leaves(params) -> dict:
    return {jax.tree_util.keystr(path): np.asarray(leaf)
            for path, leaf in jax.tree_util.tree_leaves_with_path(meta.unbox(params))}


def _assert_round_trip(params, module: nn.Module, at=""):
    """zoo -> torch (loaded strictly) -> zoo gives the same params, bit for bit."""
    module.load_state_dict(to_torch(params, module, at=at), strict=True)
    back = from_torch(module, params, at=at)
    first, second = _leaves(params), _leaves(back)
    assert first.keys() == second.keys()
    for key, value in first.items():
        np.testing.assert_array_equal(second[key], value, err_msg=key)


def _padding(lengths, size) -> torch.Tensor:
    return torch.tensor(np.arange(size)[None, :] >= lengths[:, None])  # [B, size], True = pad


def _real(lengths, size) -> np.ndarray:
    return np.arange(size)[None, :] < lengths[:, None]  # [B, size]


# ---------------------------------------------------------------- attention


@pytest.mark.parametrize("kdim", [None, 8], ids=["self", "cross_kdim8"])
def test_multihead_attention_matches_torch(kdim):
    """Self-attention with key padding (packed in_proj_weight), and cross-attention from
    a narrower memory (torch's separate q/k/v_proj_weight)."""
    torch_mha = _randomised(nn.MultiheadAttention(D, HEADS, kdim=kdim, vdim=kdim,
                                                  batch_first=True))
    original = {key: tensor.clone() for key, tensor in torch_mha.state_dict().items()}
    q = _normal(B, T, D)  # [B, T, D]
    kv = q if kdim is None else _normal(B, S, kdim, seed=1)  # [B, S, Dkv]
    lengths = np.array([kv.shape[1], 2], np.int32)
    zoo_mha = MultiHeadAttention(**config_fields(torch_mha))
    params = from_torch(torch_mha, _abstract(zoo_mha, q, kv))
    ours = _apply(zoo_mha, params, q, kv, kv_lengths=jnp.asarray(lengths))
    theirs, _ = torch_mha(*map(torch.tensor, (q, kv, kv)),
                          key_padding_mask=_padding(lengths, kv.shape[1]))
    np.testing.assert_allclose(ours, theirs.detach().numpy(), **TOL)
    # torch -> zoo -> torch is exact too: attention has nothing to split or sum.
    for key, tensor in to_torch(params, torch_mha).items():
        torch.testing.assert_close(tensor, original[key], rtol=0, atol=0)
    _assert_round_trip(params, torch_mha)


# ---------------------------------------------------------------- Transformer layers


def _config(fields, **overrides) -> TransformerConfig:
    fields = {**fields, **overrides}
    return TransformerConfig(vocab_size=11, dropout_rate=0.0, **fields)


@pytest.mark.parametrize("decoder,norm_first,activation,bias", [
    (False, False, "relu", True),  # the paper's post-LN encoder layer
    (True, True, "gelu", False),  # pre-LN decoder layer without biases (zero norm biases)
], ids=["encoder_post_relu", "decoder_pre_gelu_nobias"])
def test_transformer_layer_matches_torch(decoder, norm_first, activation, bias):
    cls = nn.TransformerDecoderLayer if decoder else nn.TransformerEncoderLayer
    torch_layer = _randomised(cls(D, HEADS, F, dropout=0.0, activation=activation,
                                  norm_first=norm_first, bias=bias, batch_first=True))
    config = _config(config_fields(torch_layer))
    assert config.norm_epsilon == 1e-5 and config.norm_placement == ("pre" if norm_first
                                                                    else "post")
    x, memory = _normal(B, T, D), _normal(B, S, D, seed=1)  # [B, T, D], [B, S, D]
    positions = jnp.broadcast_to(jnp.arange(T)[None], (B, T))
    if decoder:
        zoo_layer = DecoderLayer(config)
        ctx = LayerContext(positions, memory=jnp.asarray(memory),
                           memory_lengths=jnp.asarray(LENGTHS))
        causal = nn.Transformer.generate_square_subsequent_mask(T)
        theirs = torch_layer(torch.tensor(x), torch.tensor(memory), tgt_mask=causal,
                             tgt_is_causal=True,
                             memory_key_padding_mask=_padding(LENGTHS, S))
        real = np.ones((B, T), bool)
    else:
        zoo_layer = EncoderLayer(config)
        lengths = np.array([T, 2], np.int32)
        ctx = LayerContext(positions, self_kv_lengths=jnp.asarray(lengths))
        theirs = torch_layer(torch.tensor(x), src_key_padding_mask=_padding(lengths, T))
        real = _real(lengths, T)  # torch's fast path may leave padded rows undefined
    params = from_torch(torch_layer, _abstract(zoo_layer, x, ctx))
    ours, _ = _apply(zoo_layer, params, x, ctx)
    np.testing.assert_allclose(np.asarray(ours)[real], theirs.detach().numpy()[real], **TOL)
    _assert_round_trip(params, torch_layer)
    if not bias:  # torch has no place for a nonzero bias: saving must refuse, not drop it
        params = meta.unbox(params)
        params["ffn_norm"]["bias"] = params["ffn_norm"]["bias"] + 1.0
        with pytest.raises(ValueError, match="'ffn_norm/bias' is nonzero.*bias=False"):
            to_torch(params, torch_layer)


# ---------------------------------------------------------------- nn.Transformer


def _embedded(params, name: str, ids) -> np.ndarray:
    """What zoo's stack `name` reads: token vectors + learned positions (unscaled)."""
    table = np.asarray(meta.unbox(params)["embed"]["embedding"])  # [V, D]
    positions = np.asarray(meta.unbox(params)[name]["positional"]["embedding"])  # [max, D]
    return table[ids] + positions[None, : ids.shape[1]]  # [B, S or T, D]


def _filled(params, seed=0):
    """Abstract leaves (those torch has no counterpart for) replaced by random arrays."""
    rng = np.random.default_rng(seed)

    def fill(leaf):
        if isinstance(leaf, jax.ShapeDtypeStruct):
            return rng.standard_normal(leaf.shape).astype(np.float32)
        return leaf

    return jax.tree.map(fill, meta.unbox(params))


@pytest.mark.parametrize("final_norm", [True, False], ids=["transformer", "stacks_no_norm"])
def test_transformer_matches_torch(final_norm):
    """nn.Transformer (a final LayerNorm after each stack) into an EncoderDecoder; and
    bare TransformerEncoder / Decoder stacks without one, each loaded at its path, into
    unrolled and scanned (scan_layers=True) EncoderDecoders."""
    layers = dict(dropout=0.0, batch_first=True)
    if final_norm:
        torch_model = _randomised(nn.Transformer(D, HEADS, 2, 2, F, **layers))
        encoder, decoder = torch_model.encoder, torch_model.decoder
        fields = config_fields(torch_model)
    else:
        encoder = _randomised(nn.TransformerEncoder(
            nn.TransformerEncoderLayer(D, HEADS, F, **layers), 2, enable_nested_tensor=False))
        decoder = _randomised(nn.TransformerDecoder(
            nn.TransformerDecoderLayer(D, HEADS, F, **layers), 2), seed=1)
        fields = {**config_fields(encoder), **config_fields(decoder)}
    config = _config(fields, positional="learned", max_len=8, scale_embedding=False)
    assert config.has_final_norm == final_norm
    rng = np.random.default_rng(0)
    src = rng.integers(1, 11, (B, S)).astype(np.int32)  # [B, S]
    tgt = rng.integers(1, 11, (B, T)).astype(np.int32)  # [B, T]
    model = EncoderDecoder(config)

    def load(scan_layers):
        like = _abstract(EncoderDecoder(replace(config, scan_layers=scan_layers)), src, tgt)
        if final_norm:  # the kind read from the keys
            return like, from_torch(torch_model.state_dict(), like)
        return like, from_torch(decoder, from_torch(encoder, like, at="encoder"), at="decoder")

    like, params = load(scan_layers=False)
    # Only the embeddings and position tables, which torch has no counterpart for, are
    # left as they were in ``like`` (here abstract); they get values of their own.
    assert meta.unbox(params)["embed"] == meta.unbox(like)["embed"]
    params = _filled(params)
    if not final_norm:  # scanned layers are the unrolled ones, stacked
        scanned = _filled(load(scan_layers=True)[1])
        jax.tree.map(np.testing.assert_array_equal,
                     stack_layer_params({k: v for k, v in params.items() if k != "embed"}),
                     {k: v for k, v in scanned.items() if k != "embed"})

    def run(m, src, tgt, lengths):
        memory = m.encode(src, lengths)
        return memory.states, m.decoder(tgt, memory.states, memory.lengths)[1]

    states, hidden = _apply(model, params, src, tgt, jnp.asarray(LENGTHS),
                            method=run)  # [B, S, D], [B, T, D]
    pad = _padding(LENGTHS, S)
    theirs_memory = encoder(torch.tensor(_embedded(params, "encoder", src)),
                            src_key_padding_mask=pad)
    theirs = decoder(torch.tensor(_embedded(params, "decoder", tgt)), theirs_memory,
                     tgt_mask=nn.Transformer.generate_square_subsequent_mask(T),
                     tgt_is_causal=True, memory_key_padding_mask=pad)
    real = _real(LENGTHS, S)
    np.testing.assert_allclose(np.asarray(states)[real],
                               theirs_memory.detach().numpy()[real], **TOL)
    np.testing.assert_allclose(hidden, theirs.detach().numpy(), **TOL)
    if final_norm:
        _assert_round_trip(params, torch_model)
    else:
        _assert_round_trip(params, decoder, at="decoder")


# ---------------------------------------------------------------- LSTM / GRU / RNN

_RNNS = {"lstm": nn.LSTM, "gru": nn.GRU, "rnn": nn.RNN}


@pytest.mark.parametrize("cell,num_layers,bidirectional,batch_first", [
    ("lstm", 2, True, True),
    ("gru", 2, True, False),
    ("rnn", 2, False, False),
])
def test_rnn_matches_torch(cell, num_layers, bidirectional, batch_first):
    torch_rnn = _randomised(_RNNS[cell](E, R, num_layers=num_layers,
                                        bidirectional=bidirectional, batch_first=batch_first))
    assert config_fields(torch_rnn) == dict(cell=cell, num_layers=num_layers, features=R,
                                            bidirectional=bidirectional)
    x = _normal(B, T, E)  # [B, T, E]
    stack = RNNStack(**config_fields(torch_rnn))
    params = from_torch(torch_rnn, _abstract(stack, x))
    ours, finals = _apply(stack, params, x)  # [B, T, R * directions]
    inputs = torch.tensor(x if batch_first else x.transpose(1, 0, 2))
    theirs, state = torch_rnn(inputs)
    theirs = theirs.detach().numpy()
    np.testing.assert_allclose(ours, theirs if batch_first else theirs.transpose(1, 0, 2),
                               **TOL)
    # torch's final h [L * directions, B, R] against each zoo layer's (concatenated) final h.
    h = (state[0] if cell == "lstm" else state).detach().numpy()
    h = h.reshape(num_layers, -1, B, R).transpose(0, 2, 1, 3).reshape(num_layers, B, -1)
    for layer, final in enumerate(finals):
        np.testing.assert_allclose(final[1] if cell == "lstm" else final, h[layer], **TOL)
    _assert_round_trip(params, torch_rnn)


def test_rnn_loads_into_a_seq2seq_encoder():
    """``at`` points into a bigger model; everything else of it is kept as it was."""
    config = Seq2SeqConfig(src_vocab_size=13, tgt_vocab_size=11, cell="gru", num_layers=2,
                           embed_dim=E, hidden_dim=2 * R, bidirectional=True)
    ids = np.zeros((B, T), np.int32)
    like = {"params": _abstract(Seq2Seq(config), ids, ids)}  # a variables dict works too
    torch_gru = _randomised(nn.GRU(E, R, num_layers=2, bidirectional=True))
    params = from_torch(torch_gru, like, at="encoder/stack")
    assert params.keys() == {"params"}
    loaded = params["params"]
    assert loaded["decoder"] is like["params"]["decoder"]
    assert loaded["encoder"]["embed"] is like["params"]["encoder"]["embed"]
    state = to_torch(params, torch_gru, at="encoder/stack")
    torch_gru.load_state_dict(state, strict=True)
    back = from_torch(state, params, at="encoder/stack")["params"]
    expected = _leaves(loaded["encoder"]["stack"])
    for key, value in _leaves(back["encoder"]["stack"]).items():
        np.testing.assert_array_equal(value, expected[key], err_msg=key)


# ---------------------------------------------------------------- errors


@pytest.fixture(scope="module")
def lstm_like():
    return _abstract(RNNStack("lstm", 1, R), _normal(B, T, E))


def _lstm() -> nn.Module:
    return _randomised(nn.LSTM(E, R))


def _saved(tmp_path, obj, name="weights.pt"):
    path = tmp_path / name
    if isinstance(obj, bytes):
        path.write_bytes(obj)
    else:
        torch.save(obj, path)
    return path


@pytest.mark.parametrize("make_source,error,pattern", [
    (lambda tmp: {k: v for k, v in _lstm().state_dict().items() if k != "bias_hh_l0"},
     ValueError, r"has no key 'bias_hh_l0'"),
    (lambda tmp: nn.LSTM(E, 2 * R).state_dict(),
     ValueError, r"'weight_ih_l0': expected \[16, 5\] .*found \[32, 5\]"),
    (lambda tmp: nn.GRU(E, R).state_dict(), ValueError, r"GRU weights.*LSTM cells"),
    (lambda tmp: nn.LSTM(E, R, num_layers=2).state_dict(),
     ValueError, r"num_layers=2, bidirectional=False.*num_layers=1"),
    (lambda tmp: nn.Conv1d(E, R, 3), TypeError, r"Conv1d is not supported.*nn\.LSTM"),
    (lambda tmp: nn.RNN(E, R, nonlinearity="relu"), ValueError, r"nonlinearity='relu'"),
    (lambda tmp: nn.LSTM(E, R, proj_size=2), ValueError, r"proj_size=2"),
    (lambda tmp: {"conv.weight": torch.zeros(3)}, ValueError, r"cannot tell which.*conv"),
    (lambda tmp: _saved(tmp, b"not a checkpoint"), ValueError, r"weights\.pt.*state_dict"),
    (lambda tmp: _saved(tmp, {"model": _lstm().state_dict(), "step": 3}),
     ValueError, r"weights\.pt.*entry 'model' is a"),
], ids=["missing_key", "wrong_shape", "wrong_cell", "wrong_depth", "unsupported_type",
        "relu_rnn", "projected_lstm", "unknown_keys", "not_a_file", "nested_checkpoint"])
def test_errors_name_the_problem(lstm_like, tmp_path, make_source, error, pattern):
    with pytest.raises(error, match=pattern):
        from_torch(make_source(tmp_path), lstm_like)


def test_saving_errors_name_the_problem(lstm_like):
    params = from_torch(_lstm(), lstm_like)
    with pytest.raises(ValueError, match=r"'weight_ih_l0': expected \[32, 5\] \(in the torch "
                                         r"module\), found \[16, 5\]"):
        to_torch(params, nn.LSTM(E, 2 * R))
    with pytest.raises(ValueError, match=r"GRU weights.*LSTM cells"):
        to_torch(params, nn.GRU(E, R))
    with pytest.raises(ValueError, match=r"'layers_0/cell/.*' at='' is abstract"):
        to_torch(lstm_like, _lstm())


def test_transformer_errors_name_the_problem():
    torch_model = nn.Transformer(D, HEADS, 1, 1, F, batch_first=True)
    no_final_norm = _config(config_fields(torch_model), final_norm=False)
    ids = np.zeros((B, T), np.int32)
    like = _abstract(EncoderDecoder(no_final_norm), ids, ids)
    with pytest.raises(ValueError, match=r"ends with a LayerNorm.*final_norm=True"):
        from_torch(torch_model, like)
    with pytest.raises(ValueError, match=r"at='encoder/layers_0/x': .* no 'x' at encoder/layers_0"):
        from_torch(torch_model, like, at="encoder/layers_0/x")
    layer = nn.TransformerEncoderLayer(D, HEADS, F, activation=nn.Tanh())
    with pytest.raises(ValueError, match=r"activation Tanh\(\)"):
        config_fields(layer)
