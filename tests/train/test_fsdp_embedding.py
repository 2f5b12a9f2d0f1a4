"""FSDP and the embedding table: no step makes XLA rematerialise a sharded array in full.

Glossary: B batch, T length, D model width, V vocabulary.

FSDP stores the token table [V, D] split along D ('embed' -> 'fsdp'). A lookup
into that split table is partitioned along D while the ids and the activations
around it are split along B; XLA's SPMD partitioner can turn one into the other
only by building the whole array on every device, and says so on stderr ("[SPMD]
Involuntary full rematerialization"). ``zoo.nn.Embed`` gathers the table whole
along D where it reads it, as FSDP does for every other weight, so the warning
must not appear: not for the lookup, its tied use as the output projection
(``attend``), nor any model built on them, under fsdp or fsdp_tp.

The warning comes from C++ logging, so it is read from file descriptor 2
(``capfd``); a program known to warn is compiled first, so that a run whose XLA
logging is silenced (``TF_CPP_MIN_LOG_LEVEL`` >= 2) fails instead of passing
blind. Each program is compiled with the persistent compilation cache off: a
program read back from the cache would skip the partitioner and its warning.
"""

import flax.linen as nn
import jax
import jax.numpy as jnp
import pytest
from jax.experimental.compilation_cache import compilation_cache
from jax.sharding import NamedSharding, PartitionSpec
from test_sharding import _batch, _setup  # tests/train is on sys.path (as in test_configs_es_en)

from zoo import sharding
from zoo.nn import Embed

WARNING = "Involuntary full rematerialization"
# fsdp_tp with a data axis too: there the batch spans data x fsdp while the table's D spans
# fsdp alone. (On a mesh of only fsdp x tensor the two splits are one axis, which XLA
# reshards with an all-to-all and no warning, with or without the gather.)
MESHES = {  # strategy -> (mesh shape, mesh axes) on 8 devices
    "fsdp": ((2, 4), ("data", "fsdp")),
    "fsdp_tp": ((2, 2, 2), ("data", "fsdp", "tensor")),
}


def _compile_log(capfd, lower) -> str:
    """What compiling ``lower()`` (a ``Lowered``) writes to stderr, the partitioner run.

    Turning the cache option off is not enough by itself: JAX decides once per process,
    at its first compile, whether to use the cache; ``reset_cache`` makes it decide again.
    """
    capfd.readouterr()  # drop earlier output
    enabled = jax.config.jax_enable_compilation_cache
    jax.config.update("jax_enable_compilation_cache", False)
    compilation_cache.reset_cache()
    try:
        lower().compile()
    finally:
        jax.config.update("jax_enable_compilation_cache", enabled)
        compilation_cache.reset_cache()
    return capfd.readouterr().err


@pytest.fixture
def compile_log(capfd):
    """``_compile_log`` bound to ``capfd``, once a known-bad reshard was seen to warn."""
    mesh = sharding.make_plan(*MESHES["fsdp"], "fsdp").mesh
    # [B, T, D] split along B over data x fsdp -> split along D over fsdp: no collective
    # does that, so XLA gathers it whole and warns.
    bad = jax.jit(lambda x: jax.lax.with_sharding_constraint(
        x * 2, NamedSharding(mesh, PartitionSpec(None, None, "fsdp"))),
        in_shardings=NamedSharding(mesh, PartitionSpec(("data", "fsdp"))))
    x = jax.ShapeDtypeStruct((16, 4, 8), jnp.float32)  # [B, T, D]
    if WARNING not in _compile_log(capfd, lambda: bad.lower(x)):
        pytest.fail("XLA's partitioner warnings do not reach stderr in this run (is "
                    "TF_CPP_MIN_LOG_LEVEL set to 2 or more?), so this test cannot see them")
    return lambda lower: _compile_log(capfd, lower)


@pytest.mark.parametrize("tied", [False, True], ids=["lookup", "tied"])
@pytest.mark.parametrize("strategy", sorted(MESHES))
def test_embedding_gradients_compile_without_full_rematerialization(strategy, tied,
                                                                    compile_log):
    """The gradient of a loss of looked-up rows (and, tied, of their logits through the
    same table) with the table stored as the strategy's rules say."""
    plan = sharding.make_plan(*MESHES[strategy], strategy)
    embed = Embed(num_embeddings=40, features=32)  # [V, D]
    ids = jax.ShapeDtypeStruct((16, 11), jnp.int32, sharding=plan.batch_sharding)  # [B, T]
    boxed = jax.eval_shape(embed.init, jax.random.PRNGKey(0), ids)
    shardings = plan.state_shardings(boxed)
    assert shardings["params"]["embedding"].spec == PartitionSpec(None, "fsdp")  # split D
    params = jax.tree.map(lambda x, s: jax.ShapeDtypeStruct(x.shape, x.dtype, sharding=s),
                          nn.unbox(boxed), shardings)

    def loss(params, ids):
        x = embed.apply(params, ids)  # [B, T, D]
        if tied:
            x = embed.apply(params, x, method="attend")  # [B, T, V]
        return jnp.mean(jnp.square(x))

    grad = jax.jit(jax.grad(loss), out_shardings=shardings)
    with plan.activate():
        log = compile_log(lambda: grad.lower(params, ids))
    assert WARNING not in log


# A whole step compiles in 1-2 s for the LM, 4-7 s for the others (2 cores, cache off): the
# LM under both strategies and the encoder-decoder under fsdp always; the rest, whose table
# is the same Embed, in the slow tier.
STEPS = [("lm", "fsdp"), ("lm", "fsdp_tp"), ("transformer", "fsdp"),
         pytest.param("transformer", "fsdp_tp", marks=pytest.mark.slow),
         pytest.param("rnn", "fsdp", marks=pytest.mark.slow),
         pytest.param("rnn", "fsdp_tp", marks=pytest.mark.slow)]


@pytest.mark.parametrize("model,strategy", STEPS)
def test_model_train_steps_compile_without_full_rematerialization(model, strategy,
                                                                  compile_log):
    """Every model kind's whole train step (forward, backward, Adam) under each strategy."""
    plan = sharding.make_plan(*MESHES[strategy], strategy)
    config, state, step = _setup(model, plan, abstract=True)
    batch = plan.global_batch(_batch(config))
    with plan.activate():
        log = compile_log(lambda: step.lower(state, batch))
    assert WARNING not in log
