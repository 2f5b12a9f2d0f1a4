"""Metric logging: ``workdir/metrics.jsonl`` plus a console progress bar."""

from __future__ import annotations

import json
import math
import os
import time

from tqdm.auto import tqdm


def summarize(sums: dict) -> dict:
    """Turns summed step metrics into means: loss, token accuracy, perplexity."""
    tokens = max(float(sums.get("tokens", 0.0)), 1.0)
    out = {}
    if "nll_sum" in sums:
        nll = float(sums["nll_sum"]) / tokens
        out["nll"] = nll
        out["perplexity"] = math.exp(min(nll, 50.0))
    if "correct" in sums:
        out["token_accuracy"] = float(sums["correct"]) / tokens
    return out


class MetricWriter:
    """Appends one JSON object per record to ``metrics.jsonl``; mirrors them on the console."""

    def __init__(self, workdir: str, total_steps: int, *, initial_step: int = 0,
                 progress_bar: bool = True, is_main_process: bool = True):
        self.path = os.path.join(workdir, "metrics.jsonl")
        self.enabled = is_main_process
        self._bar = None
        if self.enabled and progress_bar:
            self._bar = tqdm(total=total_steps, initial=initial_step, unit="step",
                             dynamic_ncols=True)
        self._last = initial_step

    def write(self, step: int, split: str, values: dict) -> None:
        if not self.enabled:
            return
        record = {"step": int(step), "split": split, "time": time.time(),
                  **{k: _plain(v) for k, v in values.items()}}
        with open(self.path, "a") as f:
            f.write(json.dumps(record) + "\n")
        shown = " ".join(f"{k}={_short(v)}" for k, v in values.items())
        line = f"[{split} step {step}] {shown}"
        if self._bar is not None:
            self._bar.write(line)
        else:
            print(line, flush=True)

    def advance(self, step: int) -> None:
        if self._bar is not None:
            self._bar.update(step - self._last)
        self._last = step

    def close(self) -> None:
        if self._bar is not None:
            self._bar.close()


def read(workdir: str) -> list[dict]:
    path = os.path.join(workdir, "metrics.jsonl")
    if not os.path.exists(path):
        return []
    with open(path) as f:
        return [json.loads(line) for line in f if line.strip()]


def _plain(v):
    try:
        return float(v)
    except (TypeError, ValueError):
        return v


def _short(v):
    if isinstance(v, float):
        return f"{v:.4g}"
    return str(v)
