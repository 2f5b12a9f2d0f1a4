"""Figures and the results table of the real-translation runs (configs/nmt_*.py).

    python benchmarks/nmt_figures.py --task es_en runs/es_en_transformer runs/es_en_bahdanau \
        runs/es_en_luong runs/es_en_plain

Each argument is a finished run's workdir whose test split was scored by
``train.py --workdir DIR --eval_only`` (the newest ``eval/test_*.json`` is
read). Written to ``benchmarks/results/nmt/``:

- ``<task>.md`` / ``<task>.json``: model x test sacreBLEU, chrF, BLEU by source-length
  third, parameters, steps, wall time, the exact commands;
- ``<task>_curves.png``: validation BLEU and loss against step and against wall time;
- ``<task>_bleu_by_length.png``: test BLEU on each third of the sources by length;
- ``<task>_attention_<model>.png``: where each attention model looked while
  translating one test sentence (the RNNs' alignment; every head of the
  Transformer's last encoder-decoder attention), the same sentence for all.

Nothing here trains or tunes: it reads runs, their checkpoints and the scores
``--eval_only`` wrote. With ``--merge``, the models already in ``<task>.json``
that are not among the workdirs keep their rows, stored validation curves and
attention picture (a run of an earlier session whose workdir is gone); their
training-loss curves are not redrawn.
"""

from __future__ import annotations

import argparse
import glob
import json
import os
import platform
import sys
from datetime import UTC, datetime

import jax
import numpy as np

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, ROOT)

from configs._nmt import MODELS  # noqa: E402
from zoo.train import data as data_lib  # noqa: E402
from zoo.train import metrics as metrics_lib  # noqa: E402
from zoo.train import plots  # noqa: E402
from zoo.train.sample import load_config, restore_for_inference  # noqa: E402
from zoo.train.translation import align  # noqa: E402

plt = plots.plt
OUT = os.path.join(ROOT, "benchmarks", "results", "nmt")
THIRDS = [f"bleu_{name}_third" for name in data_lib.LENGTH_THIRDS]


def model_name(config) -> str:
    """The config argument that names the model in configs/_nmt.py."""
    name = config.model.name
    for key in MODELS:
        if key in name:
            return key
    return name


def test_scores(workdir: str) -> dict:
    found = sorted(glob.glob(os.path.join(workdir, "eval", "test_step*.json")),
                   key=os.path.getmtime)
    if not found:
        raise SystemExit(f"{workdir}: no eval/test_*.json; run train.py --workdir {workdir} "
                         "--eval_only first")
    with open(found[-1]) as f:
        return json.load(f)


def curves(workdir: str, planned_steps: int) -> dict:
    """Evaluation records with wall-clock hours since the run's config.json was written."""
    start = os.path.getmtime(os.path.join(workdir, "config.json"))
    records = metrics_lib.read(workdir)
    evals = [r for r in records if r.get("split") == "eval"]
    train = [r for r in records if r.get("split") == "train"]
    return {"step": [r["step"] for r in evals], "bleu": [r.get("bleu") for r in evals],
            "nll": [r.get("nll") for r in evals],
            "hours": [(r["time"] - start) / 3600 for r in evals],
            "train_step": [r["step"] for r in train], "train_nll": [r.get("nll") for r in train],
            "train_hours": [(r["time"] - start) / 3600 for r in train],
            "last_step": max((r["step"] for r in records), default=0),
            "planned_steps": planned_steps,
            "wall_hours": (max(r["time"] for r in records) - start) / 3600 if records else 0.0}


def plot_curves(task: str, runs: dict) -> str:
    fig, axes = plt.subplots(2, 2, figsize=(10, 7))
    for name, run in runs.items():
        c = run["curves"]
        for col, (x, tx) in enumerate([("step", "train_step"), ("hours", "train_hours")]):
            (line,) = axes[0, col].plot(c[x], c["bleu"], marker="o", label=name)
            axes[1, col].plot(c[x], c["nll"], marker="o", color=line.get_color(),
                              label=f"{name} validation")
            axes[1, col].plot(c[tx], c["train_nll"], color=line.get_color(), alpha=0.35,
                              label=f"{name} train")
    for col, label in enumerate(["step", "wall time (hours)"]):
        axes[0, col].set_ylabel("validation sacreBLEU (beam)")
        axes[1, col].set_ylabel("cross-entropy per target token (nats)")
        for row in range(2):
            axes[row, col].set_xlabel(label)
            axes[row, col].grid(alpha=0.3)
    axes[0, 0].legend(fontsize=8)
    axes[1, 1].legend(fontsize=7, ncol=2)
    fig.suptitle(f"{task}: learning curves", fontsize=10)
    path = os.path.join(OUT, f"{task}_curves.png")
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path


def plot_bleu_by_length(task: str, runs: dict) -> str:
    fig, ax = plt.subplots(figsize=(7, 3.8))
    width = 0.8 / max(len(runs), 1)
    for i, (name, run) in enumerate(runs.items()):
        values = [run["test"].get(key, np.nan) for key in THIRDS]
        ax.bar(np.arange(3) + i * width, values, width, label=name)
    some = next(iter(runs.values()))["test"]
    ranges = some.get("length_thirds", "").replace(" words", "").split(" / ")
    labels = [f"{third}\n({r} words)" for third, r in zip(data_lib.LENGTH_THIRDS, ranges,
                                                        strict=False)]
    ax.set_xticks(np.arange(3) + width * (len(runs) - 1) / 2, labels=labels or THIRDS)
    ax.set_ylabel("test sacreBLEU")
    ax.set_title(f"{task}: test BLEU by source length (thirds of the test split)", fontsize=10)
    ax.grid(axis="y", alpha=0.3)
    ax.legend(fontsize=8)
    path = os.path.join(OUT, f"{task}_bleu_by_length.png")
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path


def pick_sentence(sources: list[str], lo: int = 12, hi: int = 20) -> int:
    """The first test source of lo..hi words: long enough to show reordering, short enough
    to read."""
    for i, s in enumerate(sources):
        if lo <= len(s.split()) <= hi:
            return i
    return 0


def draw_attention(task: str, name: str, workdir: str, checkpoint: str,
                   sentence: str) -> str | None:
    """The run's attention while it translates ``sentence``; None for the plain model."""
    try:
        where = align(workdir, sentence, checkpoint=checkpoint)
    except ValueError:  # the plain seq2seq: one context vector, nothing to draw
        return None
    what = "encoder-decoder attention, last layer" if where.weights.ndim == 3 else "alignment"
    path = os.path.join(OUT, f"{task}_attention_{name}.png")
    return plots.plot_attention(path, where.weights, where.source, where.output,
                                title=f"{task} {name} (step {where.step}), {what}")


def stored_run(run: dict) -> dict:
    """A row of an earlier ``<task>.json`` as ``main`` builds it (validation curves only)."""
    c = dict(run["curves"])
    c.setdefault("last_step", max(c["step"], default=0))
    c.setdefault("planned_steps", c["last_step"])
    c.setdefault("wall_hours", max(c["hours"], default=0.0))
    c.update(train_step=[], train_nll=[], train_hours=[])
    return {**run, "curves": c}


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--task", required=True, help="es_en or de_en (names the files)")
    parser.add_argument("--sentence", type=int, default=None,
                        help="index of the test sentence to draw (default: the first of "
                             "12-20 words)")
    parser.add_argument("--merge", action="store_true",
                        help="keep the stored rows of models not among the workdirs")
    parser.add_argument("workdirs", nargs="+")
    args = parser.parse_args()
    os.makedirs(OUT, exist_ok=True)
    stored = {}
    if args.merge and os.path.exists(os.path.join(OUT, f"{args.task}.json")):
        with open(os.path.join(OUT, f"{args.task}.json")) as f:
            stored = json.load(f)

    runs, sentence = {}, None
    for workdir in args.workdirs:
        config = load_config(workdir)
        name = model_name(config)
        test = test_scores(workdir)
        if sentence is None:
            sources = test.get("sources") or data_lib.split_texts(config, workdir, "test")[0]
            index = pick_sentence(sources) if args.sentence is None else args.sentence
            sentence = sources[index]
        checkpoint = test.get("checkpoint", "best")
        params = restore_for_inference(workdir, config, best=checkpoint == "best").params
        runs[name] = {
            "workdir": workdir, "test": test,
            "curves": curves(workdir, config.train.num_train_steps),
            "params": int(sum(np.size(x) for x in jax.tree.leaves(params))),
            "command": f"python train.py --config configs/nmt_{args.task}.py:{name} "
                       f"--workdir {workdir}",
            "figure": draw_attention(args.task, name, workdir, checkpoint, sentence),
        }
    for name, run in stored.items():
        if name not in runs:
            runs[name] = stored_run(run)
    runs = dict(sorted(runs.items(), key=lambda kv: MODELS.index(kv[0])
                       if kv[0] in MODELS else len(MODELS)))
    plot_curves(args.task, runs)
    plot_bleu_by_length(args.task, runs)

    rows = ["| model | test BLEU | chrF | BLEU shortest / middle / longest third | search | "
            "params | steps | wall time | command |", "|" + " --- |" * 9]
    for name, run in runs.items():
        t, c = run["test"], run["curves"]
        thirds = " / ".join(f"{t[k]:.1f}" for k in THIRDS)
        steps = str(c["last_step"])
        if c["last_step"] < c["planned_steps"]:
            steps += f" of {c['planned_steps']} (stopped)"
        search = (f"beam {t['beam_size']}, lp {t['length_penalty']}"
                  if t.get("method") == "beam" else "greedy")
        rows.append(f"| {name} | **{t['bleu']:.1f}** | {t['chrf']:.1f} | {thirds} | {search} | "
                    f"{run['params'] / 1e6:.1f}M | {steps}, best {t['step']} | "
                    f"{c['wall_hours'] * 60:.0f} min | `{run['command']}` |")
    some = next(iter(runs.values()))["test"]
    header = [f"# {args.task}: test split, {some['num_sentences']} sentences", "",
              f"sacreBLEU `{some['bleu_signature']}`, chrF `{some['chrf_signature']}`; "
              f"source-length thirds: {some.get('length_thirds', '')}.", "",
              f"Drawn sentence: {sentence!r}", "",
              f"{platform.machine()}, {os.cpu_count()} CPU cores, jax {jax.__version__}, "
              f"{datetime.now(UTC):%Y-%m-%d}.", ""]
    with open(os.path.join(OUT, f"{args.task}.md"), "w") as f:
        f.write("\n".join(header + rows) + "\n")
    kept = ("step", "bleu", "nll", "hours", "last_step", "planned_steps", "wall_hours")
    summary = {name: {k: v for k, v in run.items() if k not in ("curves",)}
               | {"curves": {k: run["curves"][k] for k in kept}}
               for name, run in runs.items()}
    for run in summary.values():
        run["test"] = {k: v for k, v in run["test"].items()
                       if k not in ("sources", "references", "hypotheses")}
    with open(os.path.join(OUT, f"{args.task}.json"), "w") as f:
        json.dump(summary, f, indent=1)
    print("\n".join(rows))


if __name__ == "__main__":
    main()
