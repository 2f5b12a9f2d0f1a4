"""The Fréchet distance between two sets of features, each summarised by a Gaussian.

    d^2 = |mu_1 - mu_2|^2 + tr(S_1 + S_2 - 2 (S_1 S_2)^(1/2))

is the squared 2-Wasserstein distance between N(mu_1, S_1) and N(mu_2, S_2)
(Dowson & Landau 1982), the formula of Heusel et al.'s FID. Which network gives the
features decides what the number means: zoo uses a classifier trained here
(``zoo.generative.classifier``), so its distances compare models with each other,
not with published FIDs (Inception features of 299x299 colour images).

Glossary: N feature vectors, D feature width.
"""

from __future__ import annotations

from typing import NamedTuple

import numpy as np


class GaussianStats(NamedTuple):
    mean: np.ndarray  # [D] float64
    cov: np.ndarray  # [D, D] float64, the unbiased sample covariance
    count: int  # N


def gaussian_stats(features) -> GaussianStats:
    """Mean and covariance of ``features`` [N, D] (N >= 2), in float64."""
    f = np.asarray(features, np.float64)
    if f.ndim != 2 or len(f) < 2:
        raise ValueError(f"features must be [N, D] with N >= 2, got shape {f.shape}")
    return GaussianStats(f.mean(axis=0), np.cov(f, rowvar=False), len(f))


def _psd_sqrt(matrix: np.ndarray) -> np.ndarray:
    """The symmetric square root of a symmetric positive semi-definite matrix [D, D]."""
    values, vectors = np.linalg.eigh(matrix)
    return (vectors * np.sqrt(np.clip(values, 0.0, None))) @ vectors.T


def frechet_distance(a: GaussianStats, b: GaussianStats) -> float:
    """d^2 between N(a.mean, a.cov) and N(b.mean, b.cov) (the squared distance, as FID is).

    tr((S_1 S_2)^(1/2)) is computed as the sum of the square roots of the eigenvalues of
    S_1^(1/2) S_2 S_1^(1/2), which has the same eigenvalues as S_1 S_2 but is symmetric
    positive semi-definite: stable when a covariance is singular (a feature that is zero
    for every image, fewer images than features), where a general matrix square root
    of S_1 S_2 is not.
    """
    if a.mean.shape != b.mean.shape:
        raise ValueError(f"feature widths differ: {a.mean.shape} vs {b.mean.shape}")
    root_a = _psd_sqrt(a.cov)  # [D, D]
    middle = root_a @ b.cov @ root_a  # [D, D], symmetric PSD
    root_trace = np.sum(np.sqrt(np.clip(np.linalg.eigvalsh((middle + middle.T) / 2), 0, None)))
    diff = a.mean - b.mean
    return float(diff @ diff + np.trace(a.cov) + np.trace(b.cov) - 2 * root_trace)


__all__ = ["GaussianStats", "frechet_distance", "gaussian_stats"]
