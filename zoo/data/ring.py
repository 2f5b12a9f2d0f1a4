"""A generated 2-D distribution for fast tests: a ring of Gaussian modes, and a coverage check.

Glossary: B samples; the modes axis is written ``num_modes``.

As a training dataset (``data.dataset = "ring_of_gaussians"``, built by
``zoo.train.data.array_data``): the default ring (8 modes, radius 2, std 0.05),
fixed train and evaluation draws from the config seed.
"""

from __future__ import annotations

from typing import NamedTuple

import jax
import jax.numpy as jnp
import numpy as np

DATASET = "ring_of_gaussians"  # its name as a config's data.dataset
DEFAULT_STD = 0.05


def mode_centers(num_modes: int = 8, radius: float = 2.0) -> jax.Array:
    """[num_modes, 2] points evenly spaced on a circle."""
    if not isinstance(num_modes, int) or num_modes < 1:
        raise ValueError(f"num_modes must be a positive int, got {num_modes!r}")
    angles = 2 * jnp.pi * jnp.arange(num_modes) / num_modes  # [num_modes]
    return radius * jnp.stack([jnp.cos(angles), jnp.sin(angles)], axis=-1)  # [num_modes, 2]


def ring_of_gaussians(key: jax.Array, num: int, *, num_modes: int = 8, radius: float = 2.0,
                      std: float = DEFAULT_STD) -> jax.Array:
    """[num, 2] draws from an equal mixture of N(center_m, std^2 I) on a ring."""
    centers = mode_centers(num_modes, radius)  # [num_modes, 2]
    k_mode, k_noise = jax.random.split(key)
    modes = jax.random.randint(k_mode, (num,), 0, num_modes)  # [B]
    return centers[modes] + std * jax.random.normal(k_noise, (num, 2))  # [B, 2]


class Coverage(NamedTuple):
    counts: np.ndarray  # [num_modes] samples within `threshold` of each center
    high_quality: float  # fraction of samples within `threshold` of some center
    modes_covered: int  # modes with at least `min_count` samples


def mode_coverage(samples, centers, *, threshold: float, min_count: int = 1) -> Coverage:
    """How samples [B, 2] spread over the modes [num_modes, 2] (Metz et al. 2017's check)."""
    samples, centers = np.asarray(samples), np.asarray(centers)
    dist = np.linalg.norm(samples[:, None, :] - centers[None, :, :], axis=-1)  # [B, num_modes]
    near = dist.min(axis=1) < threshold  # [B]
    counts = np.bincount(dist.argmin(axis=1)[near], minlength=len(centers))  # [num_modes]
    return Coverage(counts, float(near.mean()), int((counts >= min_count).sum()))
