"""Hugging Face checkpoints: zoo against transformers itself, with nothing downloaded.

Each architecture is a tiny, randomly initialised transformers model built from
a config in this process and saved with ``save_pretrained`` once per module;
every test reads that directory. transformers and torch are imported inside
the fixtures only (they take seconds), and zoo's forward pass is jitted once
per model and shared, so the file stays within a few seconds of compute.
"""

from __future__ import annotations

import functools
import io
import json
import os
import shutil

import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np
import pytest
import safetensors.numpy

from zoo import seq2seq
from zoo.interop import hf
from zoo.transformer import PRESETS, stack_layer_params
from zoo.transformer.generate import generate_lm

V = 64  # vocabulary of both tiny models
PAD, EOS = V - 1, 0  # Marian's layout: </s> first, <pad> last (also its decoder start)
MAX_NEW = 6
TOL = 1e-4


@functools.cache
def _forward(model):
    """One jitted forward pass per zoo model: params, *inputs -> logits."""
    return jax.jit(lambda params, *args, **kw: model.apply({"params": params}, *args,
                                                           **kw).logits)


@pytest.fixture(scope="module")
def torch():
    import torch  # noqa: PLC0415 -- seconds to import; only this file's fixtures need it

    torch.manual_seed(0)
    return torch


@pytest.fixture(scope="module")
def transformers(torch):
    import transformers  # noqa: PLC0415

    transformers.logging.set_verbosity_error()
    return transformers


def _greedy(transformers, **ids):
    """A plain greedy search: none of the settings a config may add (forced </s>, banned words)."""
    return transformers.GenerationConfig(num_beams=1, do_sample=False, max_new_tokens=MAX_NEW,
                                         **ids)


# ----------------------------------------------------------------------------- Marian


DE = ["das haus ist klein.", "ich habe einen hund und eine katze.", "wir gehen heute in die stadt.",
      "der zug kommt spät an.", "guten morgen, wie geht es dir?"]
EN = ["the house is small.", "i have a dog and a cat.", "we are going to town today.",
      "the train arrives late.", "good morning, how are you?"]


def _train_spm(lines: list[str], path: str) -> list[str]:
    """A tiny SentencePiece model written to ``path``; returns its ordinary pieces."""
    import sentencepiece as spm  # noqa: PLC0415

    model = io.BytesIO()
    spm.SentencePieceTrainer.train(sentence_iterator=iter(lines * 4), model_writer=model,
                                   vocab_size=32, hard_vocab_limit=False, minloglevel=2)
    with open(path, "wb") as f:
        f.write(model.getvalue())
    sp = spm.SentencePieceProcessor(model_proto=model.getvalue())
    return [sp.id_to_piece(i) for i in range(sp.get_piece_size())
            if not (sp.is_control(i) or sp.is_unknown(i))]


@pytest.fixture(scope="module")
def marian_files(tmp_path_factory) -> str:
    """An Opus-MT-like tokenizer: source.spm (German), target.spm (English) and one vocab.json
    of V pieces, </s> first and <pad> last, as Opus-MT numbers them."""
    path = str(tmp_path_factory.mktemp("marian"))
    pieces = _train_spm(DE, os.path.join(path, "source.spm"))
    pieces += [p for p in _train_spm(EN, os.path.join(path, "target.spm")) if p not in pieces]
    assert len(pieces) <= V - 3
    pieces += [f"<unused{i}>" for i in range(V - 3 - len(pieces))]
    vocab = {p: i for i, p in enumerate(["</s>", "<unk>", *pieces, "<pad>"])}
    with open(os.path.join(path, "vocab.json"), "w") as f:
        json.dump(vocab, f)
    return path


@pytest.fixture(scope="module")
def marian_hf(transformers, torch, marian_files):
    """(directory, model): a two-layer Opus-MT-like model, swish and scaled embeddings, saved
    beside its tokenizer files."""
    config = transformers.MarianConfig(
        vocab_size=V, d_model=16, encoder_layers=2, decoder_layers=2, encoder_attention_heads=2,
        decoder_attention_heads=2, encoder_ffn_dim=32, decoder_ffn_dim=32,
        max_position_embeddings=64, activation_function="swish", scale_embedding=True,
        pad_token_id=PAD, decoder_start_token_id=PAD, eos_token_id=EOS,
        forced_eos_token_id=None, init_std=0.3)  # larger weights: less repetitive outputs
    model = transformers.MarianMTModel(config).eval()
    with torch.no_grad():
        model.final_logits_bias.normal_()  # zeros after init; make it count
    model.save_pretrained(marian_files)
    return marian_files, model


@pytest.fixture(scope="module")
def marian(marian_hf):
    return hf.load_hf(marian_hf[0])


SRC = np.array([[5, 6, 7, 8, 9, EOS], [10, 11, 12, EOS, PAD, PAD]])  # [B, S], right-padded
SRC_LENGTHS = np.array([6, 4])
TGT_IN = np.array([[PAD, 13, 14, 15], [PAD, 16, 17, 18]])  # [B, T]


def test_marian_logits_match_transformers(marian_hf, marian, torch):
    _, reference = marian_hf
    with torch.no_grad():
        want = reference(input_ids=torch.tensor(SRC), attention_mask=torch.tensor(SRC != PAD),
                         decoder_input_ids=torch.tensor(TGT_IN)).logits.numpy()
    got = _forward(marian.model)(marian.params, SRC, TGT_IN, src_lengths=SRC_LENGTHS)
    np.testing.assert_allclose(np.asarray(got), want, atol=TOL, rtol=0)


def test_marian_greedy_matches_generate(marian_hf, marian, torch, transformers):
    _, reference = marian_hf
    assert marian.decode_ids == {"bos_id": PAD, "eos_id": EOS, "pad_id": PAD}
    with torch.no_grad():
        want = reference.generate(
            input_ids=torch.tensor(SRC), attention_mask=torch.tensor(SRC != PAD),
            generation_config=_greedy(transformers, decoder_start_token_id=PAD,
                                      eos_token_id=EOS, pad_token_id=PAD)).numpy()[:, 1:]
    got = seq2seq.generate(marian.model, marian.params, SRC, SRC_LENGTHS, max_len=MAX_NEW,
                           **marian.decode_ids)
    got = np.asarray(got.tokens)[:, :want.shape[1]]  # transformers stops when all rows end
    np.testing.assert_array_equal(got, want)


# ----------------------------------------------------------------------------- GPT-2


@pytest.fixture(scope="module")
def gpt2_hf(transformers, tmp_path_factory):
    config = transformers.GPT2Config(vocab_size=V, n_positions=32, n_embd=16, n_layer=2,
                                     n_head=2, bos_token_id=1, eos_token_id=2,
                                     initializer_range=0.3)
    model = transformers.GPT2LMHeadModel(config).eval()
    path = str(tmp_path_factory.mktemp("gpt2"))
    model.save_pretrained(path)
    return path, model


@pytest.fixture(scope="module")
def gpt2(gpt2_hf):
    return hf.load_hf(gpt2_hf[0])


PROMPT = np.array([[3, 4, 5, 6], [7, 8, 9, 10]])  # [B, P]


def test_gpt2_logits_match_transformers(gpt2_hf, gpt2, torch):
    _, reference = gpt2_hf
    with torch.no_grad():
        want = reference(torch.tensor(PROMPT)).logits.numpy()
    got = _forward(gpt2.model)(gpt2.params, PROMPT)
    np.testing.assert_allclose(np.asarray(got), want, atol=TOL, rtol=0)


def test_gpt2_greedy_matches_generate(gpt2_hf, gpt2, torch, transformers):
    _, reference = gpt2_hf
    assert gpt2.decode_ids == {"eos_id": 2, "pad_id": 2}  # GPT-2 has no pad: it pads with </s>
    with torch.no_grad():
        prompt = torch.tensor(PROMPT)
        want = reference.generate(prompt, attention_mask=torch.ones_like(prompt),
                                  generation_config=_greedy(transformers, eos_token_id=2,
                                                            pad_token_id=2)).numpy()
    got = generate_lm(gpt2.model, gpt2.params, PROMPT, max_new_tokens=MAX_NEW, **gpt2.decode_ids)
    want = want[:, PROMPT.shape[1]:]
    np.testing.assert_array_equal(np.asarray(got.tokens)[:, :want.shape[1]], want)


# ----------------------------------------------------------------------------- saving back


@pytest.fixture(scope="module", params=["marian", "gpt2"])
def loaded(request, marian_hf, marian, gpt2_hf, gpt2):
    """(the transformers directory, its HFCheckpoint)."""
    return {"marian": (marian_hf[0], marian), "gpt2": (gpt2_hf[0], gpt2)}[request.param]


def _tensors(path: str) -> dict[str, np.ndarray]:
    return safetensors.numpy.load_file(os.path.join(path, "model.safetensors"))


def _assert_trees_equal(a, b):
    assert jax.tree.structure(a) == jax.tree.structure(b)
    for x, y in zip(jax.tree.leaves(a), jax.tree.leaves(b), strict=True):
        assert x.dtype == y.dtype
        np.testing.assert_array_equal(np.asarray(x), np.asarray(y))


def test_save_hf_writes_transformers_own_tensors_and_loads_back_exactly(loaded, tmp_path):
    path, ckpt = loaded
    out = hf.save_hf(ckpt.model, ckpt.params, str(tmp_path / "out"), hf_config=ckpt.hf_config,
                     generation_config=ckpt.generation_config)
    original, written = _tensors(path), _tensors(out)
    assert set(written) == set(original)
    for name, tensor in original.items():
        np.testing.assert_array_equal(written[name], tensor, err_msg=name)
    again = hf.load_hf(out)
    _assert_trees_equal(again.params, ckpt.params)
    assert again.decode_ids == ckpt.decode_ids  # the token ids came along


def test_scanned_layers_load_and_save_the_same_tensors(loaded, tmp_path):
    path, ckpt = loaded
    scanned = hf.load_hf(path, scan_layers=True)
    assert scanned.model.config.scan_layers
    _assert_trees_equal(scanned.params, stack_layer_params(ckpt.params))
    out = hf.save_hf(scanned.model, scanned.params, str(tmp_path / "out"))
    original, written = _tensors(path), _tensors(out)
    for name, tensor in original.items():
        np.testing.assert_array_equal(written[name], tensor, err_msg=name)


def test_a_model_trained_in_zoo_runs_in_transformers(loaded, tmp_path, torch, transformers):
    """zoo's own parameters (not imported ones), boxed as training keeps them, written with
    zoo's default token ids, read by transformers' from_pretrained."""
    _, ckpt = loaded
    model = ckpt.model
    marian = ckpt.hf_config["model_type"] == "marian"
    inputs = (SRC, TGT_IN) if marian else (PROMPT,)
    # Random values in the tree init makes, boxes and all (without running init: it is slow).
    shapes = jax.eval_shape(model.init, jax.random.key(0), *inputs)["params"]
    rng = np.random.default_rng(0)
    params = jax.tree.map(lambda s: jnp.asarray(rng.normal(0, 0.3, s.shape), s.dtype), shapes)
    out = hf.save_hf(model, params, str(tmp_path / "zoo"))
    config = json.load(open(os.path.join(out, "config.json")))
    cls = getattr(transformers, config["architectures"][0])
    reference = cls.from_pretrained(out).eval()
    with torch.no_grad():
        args = [torch.tensor(x) for x in inputs]
        if marian:
            want = reference(input_ids=args[0], decoder_input_ids=args[1]).logits.numpy()
        else:
            want = reference(args[0]).logits.numpy()
    got = _forward(model)(nn.unbox(params), *inputs)
    np.testing.assert_allclose(np.asarray(got), want, atol=TOL, rtol=0)
    # zoo's special ids went along: pad 0, <bos> 1 (Marian's decoder start), </s> 2
    want_ids = {"bos_id": 1, "eos_id": 2, "pad_id": 0} if marian else {"eos_id": 2, "pad_id": 0}
    assert hf.load_hf(out).decode_ids == want_ids


def test_save_hf_rejects_a_model_the_architecture_cannot_hold(tmp_path):
    config = PRESETS["transformer_tiny"]  # the paper's interleaved sinusoids, epsilon 1e-6
    with pytest.raises(ValueError, match=r"sinusoid_layout is 'interleaved'.*\['concat'\]"):
        hf.save_hf(config, {}, str(tmp_path))
    with pytest.raises(ValueError, match=r"positional is 'rotary'.*\['learned'\]"):
        hf.save_hf(PRESETS["lm_tiny"], {}, str(tmp_path))
    with pytest.raises(TypeError, match="EncoderDecoder, a DecoderLM or a TransformerConfig"):
        hf.save_hf("gpt2", {}, str(tmp_path))


# ----------------------------------------------------------------------------- other layouts


def _copy(path: str, tmp_path, tensors: dict | None = None, config: dict | None = None) -> str:
    """A copy of a checkpoint directory with its tensors and/or config.json replaced."""
    out = str(tmp_path / "copy")
    shutil.copytree(path, out)
    if tensors is not None:
        safetensors.numpy.save_file(tensors, os.path.join(out, "model.safetensors"),
                                    metadata={"format": "pt"})
    if config is not None:
        with open(os.path.join(out, "config.json"), "w") as f:
            json.dump(config, f)
    return out


def test_older_checkpoint_layouts_load_the_same(marian_hf, marian, gpt2_hf, gpt2, tmp_path):
    """Marian files that also store the tied copies and the position tables, GPT-2 files
    saved from GPT2Model (no 'transformer.' prefix) with the causal-mask buffers, and
    checkpoints sharded over several files."""
    from zoo.nn import sinusoidal_table  # noqa: PLC0415

    tensors = _tensors(marian_hf[0])
    shared = tensors["model.shared.weight"]
    table = sinusoidal_table(64, 16, layout="concat")
    extra = {"model.encoder.embed_tokens.weight": shared, "lm_head.weight": shared,
             "model.encoder.embed_positions.weight": table,
             "model.decoder.embed_positions.weight": table}
    old = hf.load_hf(_copy(marian_hf[0], tmp_path / "m", {**tensors, **extra}))
    _assert_trees_equal(old.params, marian.params)

    renamed = {k.removeprefix("transformer."): v for k, v in _tensors(gpt2_hf[0]).items()}
    renamed["h.0.attn.bias"] = np.tril(np.ones((1, 1, 32, 32), np.float32))
    old = hf.load_hf(_copy(gpt2_hf[0], tmp_path / "g", renamed))
    _assert_trees_equal(old.params, gpt2.params)

    gpt2_tensors = _tensors(gpt2_hf[0])  # a sharded checkpoint: two files and an index
    sharded = _copy(gpt2_hf[0], tmp_path / "s")
    os.remove(os.path.join(sharded, "model.safetensors"))
    index = {}
    for i, names in enumerate((sorted(gpt2_tensors)[:5], sorted(gpt2_tensors)[5:])):
        shard = f"model-0000{i + 1}-of-00002.safetensors"
        safetensors.numpy.save_file({n: gpt2_tensors[n] for n in names},
                                    os.path.join(sharded, shard), metadata={"format": "pt"})
        index.update(dict.fromkeys(names, shard))
    with open(os.path.join(sharded, "model.safetensors.index.json"), "w") as f:
        json.dump({"metadata": {}, "weight_map": index}, f)
    _assert_trees_equal(hf.load_hf(sharded).params, gpt2.params)

    untied = {**tensors, "lm_head.weight": shared + 1}
    with pytest.raises(ValueError, match="'lm_head.weight' should be tied"):
        hf.load_hf(_copy(marian_hf[0], tmp_path / "u", untied))


# ----------------------------------------------------------------------------- errors


def test_missing_unexpected_and_misshapen_tensors_are_named(marian_hf, tmp_path):
    path = marian_hf[0]
    tensors = _tensors(path)
    name = "model.decoder.layers.1.fc2.weight"
    missing = {k: v for k, v in tensors.items() if k != name}
    with pytest.raises(ValueError, match=rf"'{name}' is missing.*shape \[16, 32\]"):
        hf.load_hf(_copy(path, tmp_path / "a", missing))
    with pytest.raises(ValueError, match=r"unexpected tensors \['model.decoder.extra'\]"):
        hf.load_hf(_copy(path, tmp_path / "b", {**tensors, "model.decoder.extra": tensors[name]}))
    config = json.load(open(os.path.join(path, "config.json")))
    with pytest.raises(ValueError, match=r"'model.encoder.layers.0.fc1.weight' has shape "
                                         r"\[32, 16\]; the config needs \[64, 16\]"):
        hf.load_hf(_copy(path, tmp_path / "c", config={**config, "encoder_ffn_dim": 64,
                                                        "decoder_ffn_dim": 64}))


def test_unsupported_architectures_are_named(gpt2_hf, tmp_path):
    path = gpt2_hf[0]
    config = json.load(open(os.path.join(path, "config.json")))
    bert = {"model_type": "bert", "architectures": ["BertForMaskedLM"]}
    with pytest.raises(ValueError, match=r"model_type 'bert' \(architectures \['BertForMaskedLM'"
                                         r"\]\) is not supported.*'marian'.*'gpt2'"):
        hf.load_hf(_copy(path, tmp_path / "a", config=bert))
    head = {**config, "architectures": ["GPT2ForSequenceClassification"]}
    with pytest.raises(ValueError, match="zoo loads GPT2LMHeadModel"):
        hf.load_hf(_copy(path, tmp_path / "b", config=head))
    scaled = {**config, "scale_attn_by_inverse_layer_idx": True}
    with pytest.raises(ValueError, match="scale_attn_by_inverse_layer_idx=True"):
        hf.load_hf(_copy(path, tmp_path / "c", config=scaled))
    with pytest.raises(ValueError, match="activation_function 'quick_gelu' is not supported"):
        hf.load_hf(_copy(path, tmp_path / "d", config={**config,
                                                       "activation_function": "quick_gelu"}))
    with pytest.raises(ValueError, match=r"does not change \['d_model'\]"):
        hf.load_hf(path, d_model=8)


def test_wrong_files_are_named(gpt2_hf, tmp_path):
    path = gpt2_hf[0]
    with pytest.raises(FileNotFoundError, match="is not a directory"):
        hf.load_hf(str(tmp_path / "nowhere"))
    broken = _copy(path, tmp_path / "a")
    with open(os.path.join(broken, "model.safetensors"), "wb") as f:
        f.write(b"\x00not safetensors")
    with pytest.raises(ValueError, match="model.safetensors' is not a readable safetensors"):
        hf.load_hf(broken)
    with open(os.path.join(broken, "config.json"), "w") as f:
        f.write("{not json")
    with pytest.raises(ValueError, match="config.json' is not valid JSON"):
        hf.load_hf(broken)
    pickled = _copy(path, tmp_path / "b")
    os.rename(os.path.join(pickled, "model.safetensors"),
              os.path.join(pickled, "pytorch_model.bin"))
    with pytest.raises(FileNotFoundError, match="no model.safetensors.*torch pickles"):
        hf.load_hf(pickled)


# ----------------------------------------------------------------------------- any params tree


def test_safetensors_round_trip_is_exact_for_any_params_tree(marian, tmp_path):
    params = {**marian.params, "extra": {"half": jnp.arange(6, dtype=jnp.bfloat16).reshape(2, 3),
                                         "count": jnp.int32(7)}}
    path = str(tmp_path / "params.safetensors")
    hf.save_safetensors(params, path)
    _assert_trees_equal(hf.load_safetensors(path), params)  # the names alone rebuild the tree
    like = jax.eval_shape(lambda: params)
    _assert_trees_equal(hf.load_safetensors(path, like=like), params)

    boxed = {"w": nn.Partitioned(jnp.ones((2, 3)), names=("embed", "mlp"))}
    hf.save_safetensors(boxed, path)
    back = hf.load_safetensors(path, like=boxed)
    assert isinstance(back["w"], nn.Partitioned) and back["w"].names == ("embed", "mlp")

    with pytest.raises(ValueError, match=r"'w' is float32\[2, 3\]; `like` has float32\[3, 2\]"):
        hf.load_safetensors(path, like={"w": jnp.ones((3, 2))})
    with pytest.raises(ValueError, match=r"missing \['v'\], unexpected \['w'\]"):
        hf.load_safetensors(path, like={"v": jnp.ones((2, 3))})
    with pytest.raises(ValueError, match="keys must be non-empty strings without '/'"):
        hf.save_safetensors({"a/b": jnp.ones(2)}, path)


# ----------------------------------------------------------------------------- Opus-MT tokenizer


# transformers' MarianTokenizer normalises punctuation with sacremoses when it is installed
# (zoo does not); without it, it warns and does not either, as in these tests.
NO_SACREMOSES = pytest.mark.filterwarnings("ignore:Recommended. pip install sacremoses")


@NO_SACREMOSES
def test_marian_tokenizer_matches_transformers(marian_files, transformers):
    from zoo.data.marian import MarianTokenizer, ZooOrderTokenizer  # noqa: PLC0415

    files = {k: os.path.join(marian_files, f) for k, f in (
        ("source_spm", "source.spm"), ("target_spm", "target.spm"), ("vocab", "vocab.json"))}
    reference = transformers.MarianTokenizer(**files)
    sources = [*DE, "das haus ist groß", ">>en<< der hund"]  # 'ß' and '>>en<<' are <unk>
    source = MarianTokenizer(marian_files, "source")
    assert [source.encode(s) for s in sources] == reference(sources)["input_ids"]
    target = MarianTokenizer(marian_files, "target")
    ids = reference(text_target=EN)["input_ids"]
    assert [target.encode(s, add_eos=True) for s in EN] == ids
    assert [target.decode(i) for i in ids] == reference.batch_decode(ids,
                                                                     skip_special_tokens=True)

    zoo = ZooOrderTokenizer(target)  # zoo's special ids, one row more
    assert zoo.size == V + 1 and zoo.order[:4].tolist() == [PAD, PAD, EOS, 1]
    for text, marian_ids in zip(EN, ids, strict=True):
        zoo_ids = zoo.encode(text, add_eos=True)
        assert zoo.order[zoo_ids].tolist() == marian_ids
        assert zoo.decode(zoo_ids) == target.decode(marian_ids) == text


@NO_SACREMOSES
def test_translate_reads_an_imported_opus_mt_directory(marian_hf, tmp_path, torch, transformers):
    """import_marian writes a zoo run; translate on it gives transformers' greedy translation
    with the checkpoint's own generation settings (Opus-MT forbids generating <pad>)."""
    from zoo.train import translate  # noqa: PLC0415
    from zoo.train.data import seq2seq_data  # noqa: PLC0415
    from zoo.train.imports import import_marian  # noqa: PLC0415

    path, reference = marian_hf
    opus = _copy(path, tmp_path / "opus")
    with open(os.path.join(opus, "generation_config.json")) as f:
        generation = json.load(f)
    with open(os.path.join(opus, "generation_config.json"), "w") as f:
        json.dump({**generation, "bad_words_ids": [[PAD]]}, f)
    config = import_marian(opus, str(tmp_path / "run"))
    assert config.model.vocab_size == V + 1 and config.data.tokenizer == "marian"

    sentences = DE[:3]
    got = translate(str(tmp_path / "run"), sentences, max_len=MAX_NEW)
    tok = transformers.MarianTokenizer.from_pretrained(opus)
    batch = tok(sentences, padding=True, return_tensors="pt")
    with torch.no_grad():
        out = reference.generate(**batch, generation_config=_greedy(
            transformers, decoder_start_token_id=PAD, eos_token_id=EOS, pad_token_id=PAD,
            bad_words_ids=[[PAD]]))
    assert got.texts == tok.batch_decode(out, skip_special_tokens=True)
    assert got.step == 0
    with pytest.raises(ValueError, match="already holds a run"):
        import_marian(opus, str(tmp_path / "run"))
    bundle = seq2seq_data(config, str(tmp_path / "run"))  # tokenizers, and no data until set
    with pytest.raises(ValueError, match="'data.dataset' is empty"):
        bundle.train_iterator()
