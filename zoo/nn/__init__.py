"""Building blocks: token embeddings, positional encodings, feed-forward, norms."""

from zoo.nn.embed import Embed, check_indices, check_token_ids
from zoo.nn.feedforward import ACTIVATIONS, FeedForward
from zoo.nn.norms import NORMS, make_norm
from zoo.nn.positional import (
    POSITIONAL,
    SINUSOID_LAYOUTS,
    LearnedPositionalEmbedding,
    SinusoidalEmbedding,
    apply_rotary,
    sinusoidal_table,
)

__all__ = [
    "ACTIVATIONS",
    "Embed",
    "FeedForward",
    "LearnedPositionalEmbedding",
    "NORMS",
    "POSITIONAL",
    "SINUSOID_LAYOUTS",
    "SinusoidalEmbedding",
    "apply_rotary",
    "check_indices",
    "check_token_ids",
    "make_norm",
    "sinusoidal_table",
]
