"""Any zoo model as a Flax NNX module, through ``flax.nnx.bridge``.

    from flax import nnx
    from zoo.interop.nnx import to_nnx

    model = zoo.registry.build("lm_tiny")                  # a linen module
    lm = to_nnx(model, tokens, rngs=nnx.Rngs(0))           # an initialised nnx.Module
    out = lm(tokens)                                       # what model.apply gives

    s2s = to_nnx(zoo.registry.build("seq2seq_luong_lstm"), src, tgt_in,
                 src_lengths=lengths, rngs=nnx.Rngs(0))
    memory = s2s.encode(src, lengths)                      # other methods by name

The result is ``nnx.bridge.ToNNX``: each call runs the linen module's ``apply``
on the NNX module's variables, so outputs are the linen outputs and the
``nnx.Param`` paths are the linen ``params`` paths (``{'decoder': {'layers_0':
...}}``). Everything NNX offers then works on it: ``nnx.Optimizer``,
``nnx.jit``, ``nnx.state`` / ``nnx.update``, use as a submodule.

Randomness: the module keeps (a fork of) ``rngs``. Initialisation draws the
``params`` stream (or ``default``); a training call (``deterministic=False``)
draws ``dropout`` if ``rngs`` has it, and otherwise the ``params`` stream, as
linen does. A call may also pass its own ``rngs=key``.

Trained linen parameters (a checkpoint of ``train.py``) go in with
``state = nnx.state(m, nnx.Param); nnx.replace_by_pure_dict(state, params);
nnx.update(m, state)``; a bare ``nnx.update(m, params)`` would replace the
``Param`` variables with plain arrays.
"""

from __future__ import annotations

from typing import Any

import flax.linen as nn
from flax import nnx


def to_nnx(model: nn.Module, *example_args: Any, rngs: nnx.Rngs,
           **example_kwargs: Any) -> nnx.bridge.ToNNX:
    """``model`` (a linen module) initialised on example inputs, as an ``nnx.Module``.

    ``example_args`` / ``example_kwargs`` are what ``model.init`` takes after the
    key (e.g. ``tokens`` for a language model, ``src, tgt, src_lengths=...`` for
    an encoder-decoder); only their shapes and dtypes shape the parameters.
    """
    if not isinstance(model, nn.Module):
        raise TypeError(f"model must be a flax.linen.Module (e.g. zoo.registry.build(name)), "
                        f"got {type(model).__name__}")
    if not isinstance(rngs, nnx.Rngs):
        raise TypeError(f"rngs must be an nnx.Rngs (e.g. nnx.Rngs(0), or "
                        f"nnx.Rngs(params=0, dropout=1)), got {type(rngs).__name__}")
    # Every zoo parameter carries logical axis names ('embed', 'heads', ...). Flax 0.12
    # places an NNX variable that has sharding names on the mesh as it is created, which
    # raises with no mesh, and under a mesh too for any name the rules leave out (zoo's
    # rules replicate those; flax reads them as mesh axes). So the variables are made
    # unplaced; the names stay in their metadata (nnx.get_partition_spec reads them), and
    # under a mesh the linen apply inside each call still constrains every parameter.
    with nnx.use_eager_sharding(False):
        return nnx.bridge.ToNNX(model, rngs=rngs).lazy_init(*example_args, **example_kwargs)
