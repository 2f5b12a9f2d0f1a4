"""The Fréchet distance against closed forms and an eigenvalue computation of its own."""

import numpy as np
import pytest

from zoo.generative.frechet import GaussianStats, frechet_distance, gaussian_stats

RNG = np.random.default_rng(0)


def _random_cov(d: int) -> np.ndarray:
    a = RNG.normal(size=(d, d))
    return a @ a.T / d + 0.1 * np.eye(d)


def test_diagonal_covariances_have_the_closed_form():
    """Commuting (diagonal) covariances: sum of (m1 - m2)^2 + (s1 - s2)^2 over the axes."""
    m1, m2 = RNG.normal(size=5), RNG.normal(size=5)
    s1, s2 = RNG.uniform(0.5, 2, size=5), RNG.uniform(0.5, 2, size=5)  # standard deviations
    got = frechet_distance(GaussianStats(m1, np.diag(s1**2), 0),
                           GaussianStats(m2, np.diag(s2**2), 0))
    assert got == pytest.approx(np.sum((m1 - m2) ** 2) + np.sum((s1 - s2) ** 2), rel=1e-9)


def test_general_covariances_match_the_eigenvalues_of_the_product():
    """tr((S1 S2)^(1/2)) = sum of the square roots of the (real, positive) eigenvalues of
    S1 S2; symmetric in its arguments; zero from a Gaussian to itself."""
    a = GaussianStats(RNG.normal(size=6), _random_cov(6), 0)
    b = GaussianStats(RNG.normal(size=6), _random_cov(6), 0)
    root_trace = np.sum(np.sqrt(np.linalg.eigvals(a.cov @ b.cov).real))
    want = np.sum((a.mean - b.mean) ** 2) + np.trace(a.cov) + np.trace(b.cov) - 2 * root_trace
    assert frechet_distance(a, b) == pytest.approx(want, rel=1e-8)
    assert frechet_distance(b, a) == pytest.approx(want, rel=1e-8)
    # abs=1e-8: zero up to the float64 rounding of two eigendecompositions of 6x6 matrices.
    assert frechet_distance(a, a) == pytest.approx(0.0, abs=1e-8)


def test_stats_of_features_and_a_shift_of_them():
    """Shifting every feature vector by c moves only the mean term: d^2 = |c|^2; a singular
    covariance (fewer samples than features) still gives a finite distance."""
    feats = RNG.normal(size=(400, 8))
    shift = np.arange(8) / 4
    stats = gaussian_stats(feats)
    np.testing.assert_allclose(stats.mean, feats.mean(0))
    np.testing.assert_allclose(stats.cov, np.cov(feats.T))
    assert stats.count == 400
    assert frechet_distance(stats, gaussian_stats(feats + shift)) == pytest.approx(
        np.sum(shift**2), rel=1e-6)
    few = gaussian_stats(RNG.normal(size=(4, 8)))  # rank 3
    assert np.isfinite(frechet_distance(few, stats))


def test_bad_features_are_named():
    with pytest.raises(ValueError, match="features must be"):
        gaussian_stats(np.zeros((1, 3)))
    with pytest.raises(ValueError, match="feature widths differ"):
        frechet_distance(gaussian_stats(RNG.normal(size=(5, 3))),
                         gaussian_stats(RNG.normal(size=(5, 4))))
