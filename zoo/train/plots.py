"""Pictures written to the workdir: metric curves, attention heat maps, 2-D sample scatters,
confusion matrices."""

from __future__ import annotations

import os
from collections.abc import Sequence

import matplotlib

matplotlib.use("Agg")  # files only; no display on training machines
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402

from zoo.train import metrics as metrics_lib  # noqa: E402


def plot_curves(workdir: str, keys: Sequence[str] = ("loss", "token_accuracy", "exact_match",
                                                     "bleu", "perplexity", "negative_elbo",
                                                     "d_loss", "g_loss", "accuracy",
                                                     "bits_per_dim")) -> str | None:
    """One panel per metric found in metrics.jsonl, train and eval lines; returns the PNG path."""
    records = metrics_lib.read(workdir)
    present = [k for k in keys if any(k in r for r in records)]
    if not present:
        return None
    fig, axes = plt.subplots(1, len(present), figsize=(4 * len(present), 3.2), squeeze=False)
    for ax, key in zip(axes[0], present, strict=True):
        for split in ("train", "eval"):
            pts = [(r["step"], r[key]) for r in records if r.get("split") == split and key in r]
            if pts:
                steps, values = zip(*pts, strict=True)
                ax.plot(steps, values, marker="." if split == "eval" else None, label=split)
        ax.set_title(key)
        ax.set_xlabel("step")
        if key in ("loss", "perplexity") and all(r[key] > 0 for r in records if key in r):
            ax.set_yscale("log")  # not for losses that go negative (an EBM's)
        ax.grid(alpha=0.3)
        ax.legend()
    return _save(fig, os.path.join(workdir, "curves.png"))


def plot_attention(path: str, weights, src_tokens: Sequence[str], tgt_tokens: Sequence[str],
                   title: str = "") -> str:
    """Heat map of one example's attention, target tokens (rows) x source tokens (columns).

    Args:
      weights: [T, S] attention weights (rows: generated tokens; columns: source
        tokens), or [N, T, S]: one panel per head, side by side.
    """
    weights = np.asarray(weights, np.float32)
    heads = weights[None] if weights.ndim == 2 else weights  # [N, T, S]
    heads = heads[:, : len(tgt_tokens), : len(src_tokens)]
    width, height = 0.32 * len(src_tokens) + 2, 0.32 * len(tgt_tokens) + 1.5
    fig, axes = plt.subplots(1, len(heads), figsize=(width * len(heads), height), squeeze=False)
    for i, (ax, head) in enumerate(zip(axes[0], heads, strict=True)):
        ax.imshow(head, cmap="gray_r", vmin=0.0, vmax=1.0, aspect="auto")
        ax.set_xticks(range(len(src_tokens)), labels=list(src_tokens), rotation=90, fontsize=8)
        ax.set_yticks(range(len(tgt_tokens)), labels=list(tgt_tokens) if i == 0 else [],
                      fontsize=8)
        ax.set_xlabel("source")
        if i == 0:
            ax.set_ylabel("output")
        if len(heads) > 1:
            ax.set_title(f"head {i}", fontsize=9)
    if title:
        fig.suptitle(title, fontsize=9)
    return _save(fig, path)


def plot_points(path: str, points, reference=None, centers=None, title: str = "") -> str:
    """Scatter of 2-D samples [N, 2] over ``reference`` data [M, 2] and mode ``centers`` [K, 2]."""
    points = np.asarray(points, np.float32)
    fig, ax = plt.subplots(figsize=(4.2, 4.2))
    if reference is not None:
        reference = np.asarray(reference, np.float32)
        ax.scatter(reference[:, 0], reference[:, 1], s=3, c="0.75", label="data")
    ax.scatter(points[:, 0], points[:, 1], s=3, c="tab:blue", label="samples")
    if centers is not None:
        centers = np.asarray(centers, np.float32)
        ax.scatter(centers[:, 0], centers[:, 1], s=40, marker="x", c="tab:red", label="modes")
    ax.set_aspect("equal")
    ax.legend(loc="upper right", fontsize=7)
    if title:
        ax.set_title(title, fontsize=9)
    return _save(fig, path)


def plot_confusion(path: str, confusion, labels: Sequence[str] | None = None,
                   title: str = "") -> str:
    """Heat map of a confusion matrix [L, L] of counts (rows: true class, columns: predicted),
    each row shown as fractions; the diagonal (each class's recall) is also written out."""
    confusion = np.asarray(confusion, np.float64)
    rows = confusion / np.maximum(confusion.sum(axis=1, keepdims=True), 1.0)  # [L, L]
    labels = list(labels) if labels is not None else [str(i) for i in range(len(rows))]
    fig, ax = plt.subplots(figsize=(0.45 * len(rows) + 2.2, 0.45 * len(rows) + 1.6))
    ax.imshow(rows, cmap="Blues", vmin=0.0, vmax=1.0)
    for i in range(len(rows)):
        ax.text(i, i, f"{rows[i, i]:.2f}", ha="center", va="center", fontsize=7,
                color="white" if rows[i, i] > 0.5 else "black")
    ax.set_xticks(range(len(rows)), labels=labels, rotation=90, fontsize=7)
    ax.set_yticks(range(len(rows)), labels=labels, fontsize=7)
    ax.set_xlabel("predicted")
    ax.set_ylabel("true")
    if title:
        ax.set_title(title, fontsize=9)
    return _save(fig, path)


def plot_energy(path: str, energy, extent: Sequence[float], centers=None,
                title: str = "") -> str:
    """Heat map of an energy over a grid of the plane, [G, G] (rows: y, columns: x), spanning
    ``extent`` (x0, x1, y0, y1), with mode ``centers`` [K, 2]. Colours stop at the 90th
    percentile: the basins matter, not the energy far from the data."""
    energy = np.asarray(energy, np.float32)
    low, high = np.percentile(energy, [0, 90])
    fig, ax = plt.subplots(figsize=(4.6, 4.2))
    image = ax.imshow(energy, origin="lower", extent=tuple(extent), cmap="viridis",
                      vmin=low, vmax=max(high, low + 1e-6))
    fig.colorbar(image, ax=ax, label="energy", shrink=0.85)
    if centers is not None:
        centers = np.asarray(centers, np.float32)
        ax.scatter(centers[:, 0], centers[:, 1], s=40, marker="x", c="tab:red", label="modes")
        ax.legend(loc="upper right", fontsize=7)
    if title:
        ax.set_title(title, fontsize=9)
    return _save(fig, path)


def _save(fig, path: str) -> str:
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path
