"""Token embeddings with a tied output projection, and index checks.

Glossary: B batch, T length, D model width (features), V vocabulary size.

``Embed`` maps token ids to vectors and, through ``attend``, maps vectors back
to vocabulary logits with the same table (weight tying, Press & Wolf 2017, as
used by "Attention Is All You Need" §3.4).

Index checks: a lookup with an out-of-range index has no right answer, so
``check_indices`` rejects it with a ValueError whenever the indices are
concrete (numpy arrays, or jax arrays outside ``jit``). Under ``jit`` the
values are unknown at trace time; there the lookup itself turns every
out-of-range index (negative ones too) into a row of NaNs, which poisons the
loss loudly instead of silently reading a clamped or wrapped row.
"""

from __future__ import annotations

from typing import Any

import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np

Array = jax.Array
Dtype = Any
Initializer = nn.initializers.Initializer


def concrete_value(x: Any) -> np.ndarray | None:
    """``x`` as a numpy array, or None when its value is not available on this host.

    That is a tracer (value unknown until run time) or a multi-host array whose
    shards live partly on other processes. Outside ``jit`` this copies a jax
    array to the host, a sync that jitted training steps never pay.
    """
    try:
        if isinstance(x, jax.Array) and not x.is_fully_addressable:
            return None
        return np.asarray(x)
    except (jax.errors.TracerArrayConversionError, jax.errors.ConcretizationTypeError):
        return None


def check_indices(x: Any, size: int, *, name: str, size_name: str) -> None:
    """Checks that ``x`` holds integer indices into a table of ``size`` rows.

    Raises TypeError if ``x`` is not of an integer dtype, and ValueError if ``x``
    is concrete and some value lies outside ``[0, size)``. Traced values are
    only dtype-checked (see the module docstring for what happens to them).
    """
    dtype = x.dtype if hasattr(x, "dtype") else np.asarray(x).dtype
    if not jnp.issubdtype(dtype, jnp.integer):
        raise TypeError(f"{name} must have an integer dtype, got {dtype}")
    values = concrete_value(x)
    if values is None or values.size == 0:
        return
    low, high = int(values.min()), int(values.max())
    if low < 0 or high >= size:
        raise ValueError(
            f"{name} must lie in [0, {size_name}) = [0, {size}); got values in [{low}, {high}]"
        )


def check_token_ids(ids: Any, vocab_size: int, name: str = "ids") -> None:
    """Checks token ids for a vocabulary of ``vocab_size``; for data pipelines and ``Embed``."""
    check_indices(ids, vocab_size, name=name, size_name="vocab_size")


def take_rows(table: Array, indices: Array) -> Array:
    """``table[indices]`` along axis 0, with NaN rows for every out-of-range index.

    ``jnp.take`` already fills indices >= size; negative ones it would wrap
    Python-style, so they are moved past the end first.
    """
    size = table.shape[0]
    indices = jnp.where(indices < 0, size, indices)
    return jnp.take(table, indices, axis=0, mode="fill", fill_value=jnp.nan)


class Embed(nn.Module):
    """Token embedding table ``[V, D]`` with a tied output projection.

    Attributes:
      num_embeddings: vocabulary size V.
      features: model width D.
      scale_by_sqrt_dim: multiply looked-up vectors by sqrt(D), as the
        Transformer paper does, so that with the default init they have unit
        scale, comparable to the sinusoidal encodings added to them.
      dtype: compute dtype of the lookup output and of ``attend``'s matmul.
      param_dtype: dtype of the table.
      embedding_init: table initializer; None means normal(stddev=D**-0.5).
        That stddev keeps tied logits ``x @ E.T`` at unit variance when ``x``
        has unit-variance entries (as after a norm), so the initial softmax is
        neither saturated nor flat.
    """

    num_embeddings: int
    features: int
    scale_by_sqrt_dim: bool = False
    dtype: Dtype = jnp.float32
    param_dtype: Dtype = jnp.float32
    embedding_init: Initializer | None = None

    def __post_init__(self):
        if self.num_embeddings <= 0:
            raise ValueError(
                f"num_embeddings must be a positive vocabulary size, got {self.num_embeddings}"
            )
        if self.features <= 0:
            raise ValueError(f"features must be a positive width, got {self.features}")
        super().__post_init__()

    def setup(self):
        init = self.embedding_init or nn.initializers.normal(stddev=self.features**-0.5)
        self.embedding = self.param(
            "embedding",
            nn.with_logical_partitioning(init, ("vocab", "embed")),
            (self.num_embeddings, self.features),  # [V, D]
            self.param_dtype,
        )

    def _table(self) -> Array:
        """[V, D] in ``dtype``, whole along D wherever it is read (split along V as the rules say).

        FSDP stores the table split along D ('embed'), and, as for every other weight, it is
        gathered where it is used. Left to itself XLA would look rows up in the split table:
        the looked-up rows [B, T, D] would come out split along D for the whole batch, and
        their gradients would have to go back from split along B to split along D. No
        collective does either reshard, so XLA's partitioner builds the whole array on every
        device and warns ("involuntary full rematerialization"). In ``attend`` the gather
        also spares the backward pass a second all-reduce of the table's gradient.
        """
        table = jnp.asarray(self.embedding, self.dtype)  # [V, D]; cast before the gather
        return nn.with_logical_constraint(table, ("vocab", None))

    def __call__(self, ids: Array) -> Array:
        """ids: [B, T] integer token ids -> [B, T, D] in ``dtype``."""
        if jnp.ndim(ids) != 2:
            raise ValueError(f"ids must be 2-D [B, T], got shape {jnp.shape(ids)}")
        check_token_ids(ids, self.num_embeddings)
        x = take_rows(self._table(), ids)  # [B, T, D]
        if self.scale_by_sqrt_dim:
            x = x * jnp.asarray(np.sqrt(self.features), self.dtype)
        return nn.with_logical_constraint(x, ("batch", "length", "embed"))

    def attend(self, x: Array) -> Array:
        """x: [B, T, D] -> logits [B, T, V] in float32, using the embedding table.

        The matmul runs in ``dtype`` but accumulates and returns float32, since
        the logits feed a softmax / loss, which we keep in float32.
        """
        if jnp.ndim(x) != 3 or x.shape[-1] != self.features:
            raise ValueError(
                f"x must be [B, T, D] with D = features = {self.features}, got shape {x.shape}"
            )
        x = jnp.asarray(x, self.dtype)  # [B, T, D]
        logits = jnp.einsum(
            "BTD,VD->BTV", x, self._table(), preferred_element_type=jnp.float32
        )  # [B, T, V]
        return nn.with_logical_constraint(logits, ("batch", "length", "vocab"))
