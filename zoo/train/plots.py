"""Pictures written to the workdir: metric curves, attention heat maps, 2-D sample scatters."""

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
                                                     "d_loss", "g_loss")) -> str | None:
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
        if key in ("loss", "perplexity"):
            ax.set_yscale("log")
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


def _save(fig, path: str) -> str:
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path
