"""Attention: one kernel signature over many implementations, masks, seq2seq scores, MHA."""

from zoo.attention.api import (
    IMPLEMENTATIONS,
    blockwise_attention,
    dot_product_attention,
    reference_attention,
    resolve_implementation,
)
from zoo.attention.masks import (
    causal_mask,
    combine_masks,
    local_window_mask,
    padding_mask,
    segment_mask,
    structural_mask,
)

__all__ = [
    "IMPLEMENTATIONS",
    "blockwise_attention",
    "causal_mask",
    "combine_masks",
    "dot_product_attention",
    "local_window_mask",
    "padding_mask",
    "reference_attention",
    "resolve_implementation",
    "segment_mask",
    "structural_mask",
]

from zoo.attention.mha import MultiHeadAttention  # noqa: E402

__all__ += ["MultiHeadAttention"]
