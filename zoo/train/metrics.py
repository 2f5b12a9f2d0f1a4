"""Metric logging, from one place: ``workdir/metrics.jsonl``, TensorBoard event files in
``workdir/tb/`` and the console (a progress bar).

Every record goes to both files: numbers as scalars tagged ``<split>/<name>``
(``train/loss``, ``eval/bleu``), strings as text. Families add pictures
(``image_file``) and decoded examples or samples (``text``), which only
TensorBoard keeps; their PNGs stay in the workdir as before.

Resume: a writer created at ``initial_step`` > 0 first drops the records of
later steps from both files (what an earlier attempt logged after the
checkpoint the run restarted from), so steps never repeat or go back.
Only the main process writes.
"""

from __future__ import annotations

import json
import math
import os
import time

import matplotlib.image
import numpy as np
from tqdm.auto import tqdm

from zoo.train.tensorboard import EventLog

TB_FOLDER = "tb"


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
    """Appends each record to ``metrics.jsonl`` and the TensorBoard event file; mirrors it
    on the console."""

    def __init__(self, workdir: str, total_steps: int, *, initial_step: int = 0,
                 progress_bar: bool = True, is_main_process: bool = True):
        self.path = os.path.join(workdir, "metrics.jsonl")
        self.enabled = is_main_process
        self._bar = None
        self._tb = None
        self._last_logged: dict[str, int] = {}  # split -> its newest step in the files
        if self.enabled:
            for record in _rewind(self.path, initial_step):
                split = record["split"]
                self._last_logged[split] = max(self._last_logged.get(split, -1), record["step"])
            self._tb = EventLog(os.path.join(workdir, TB_FOLDER), initial_step)
            if progress_bar:
                self._bar = tqdm(total=total_steps, initial=initial_step, unit="step",
                                 dynamic_ncols=True)
        self._last = initial_step

    def write(self, step: int, split: str, values: dict) -> None:
        """One record; a step at or before the split's last logged one (a finished run's
        evaluation repeated) is shown but not written again."""
        if not self.enabled:
            return
        if step > self._last_logged.get(split, -1):
            self._last_logged[split] = step
            record = {"step": int(step), "split": split, "time": time.time(),
                      **{k: _plain(v) for k, v in values.items()}}
            with open(self.path, "a") as f:
                f.write(json.dumps(record) + "\n")
            for key, value in values.items():
                value = _plain(value)
                if isinstance(value, float):
                    self._tb.scalar(f"{split}/{key}", value, step)
                else:
                    self._tb.text(f"{split}/{key}", str(value), step)
            self._tb.flush()
        shown = " ".join(f"{k}={_short(v)}" for k, v in values.items())
        line = f"[{split} step {step}] {shown}"
        if self._bar is not None:
            self._bar.write(line)
        else:
            print(line, flush=True)

    def image_file(self, step: int, tag: str, path: str) -> None:
        """A PNG the run wrote (an attention map, a sample grid), as a TensorBoard image."""
        if not self.enabled:
            return
        pixels = matplotlib.image.imread(path)  # [Y, X, C] float in [0, 1] for a PNG
        if pixels.ndim == 2:
            pixels = pixels[..., None]
        self._tb.image(tag, np.round(pixels * 255).astype(np.uint8), step)
        self._tb.flush()

    def text(self, step: int, tag: str, text: str) -> None:
        """Markdown text (decoded examples, samples) for TensorBoard's text tab."""
        if not self.enabled:
            return
        self._tb.text(tag, text, step)
        self._tb.flush()

    def advance(self, step: int) -> None:
        if self._bar is not None:
            self._bar.update(step - self._last)
        self._last = step

    def close(self) -> None:
        if self._bar is not None:
            self._bar.close()
        if self._tb is not None:
            self._tb.close()


def _rewind(path: str, step: int) -> list[dict]:
    """Drops the records after ``step`` from metrics.jsonl; returns the ones kept."""
    records = _read_path(path)
    kept = [r for r in records if r["step"] <= step]
    if len(kept) < len(records):
        with open(path + ".tmp", "w") as f:
            f.writelines(json.dumps(r) + "\n" for r in kept)
        os.replace(path + ".tmp", path)
    return kept


def read(workdir: str) -> list[dict]:
    return _read_path(os.path.join(workdir, "metrics.jsonl"))


def _read_path(path: str) -> list[dict]:
    """The records of a metrics.jsonl; a line a killed process left half written is skipped."""
    if not os.path.exists(path):
        return []
    records = []
    with open(path) as f:
        for line in f:
            try:
                records.append(json.loads(line))
            except json.JSONDecodeError:
                continue
    return records


def _plain(v):
    try:
        return float(v)
    except (TypeError, ValueError):
        return v


def _short(v):
    if isinstance(v, float):
        return f"{v:.4g}"
    return str(v)
