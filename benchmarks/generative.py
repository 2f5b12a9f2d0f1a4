"""Every generative model's samples, judged by one classifier trained here; one table.

    .venv/bin/python benchmarks/generative.py \
        --classifier runs/classifier_fashion_mnist \
        --run vae=runs/vae_fashion_mnist --run gan=runs/gan_fashion_mnist \
        --run pixelcnn=runs/pixelcnn_fashion_mnist --run flow=runs/flow_fashion_mnist \
        --run diffusion=runs/diffusion_fashion_mnist --num_samples 1000

For each finished train.py run (its newest checkpoint that restores, read only):

- draws ``--num_samples`` images with the run's family (``sample_images``: the
  same sampler and settings as the run's evaluation pictures), in chunks; the
  seconds per image leave out the first chunk, which compiles;
- classifies them with the classifier run: the Fréchet distance between the
  Gaussians of their penultimate-layer features and of the test split's (all
  10,000 images), and the histogram of predicted classes (mode coverage);
- takes the model's likelihood from its last evaluation (bits/dim for the
  PixelCNN and the flow; the VAE's negative ELBO, and its IWAE bound with
  ``--iwae_samples`` importance samples computed here on the first
  ``--iwae_images`` test images, beside the ELBO of the same images).

Two reference rows calibrate the distance: ``--num_samples`` training images
(the floor: real images that are not the test images, same sample size) and as
many images of the single most common class.

The distances are in this classifier's features: they rank these models
against each other and are not Inception FIDs. Training wall times come from
``benchmarks/results/runs/<config>.json`` (benchmarks/config_runs.py).
Writes benchmarks/results/generative.{json,md,png} and each model's sample grid,
generative_<model>.png; the rows of models measured by an
earlier call with the same ``--num_samples`` are kept (measure each run as it finishes).
"""

from __future__ import annotations

import argparse
import json
import os
import time

import common
import jax
import matplotlib
import numpy as np
from PIL import Image

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402

from zoo.data.builders import fashion_mnist  # noqa: E402
from zoo.data.builders.fashion_mnist import LABELS  # noqa: E402
from zoo.generative.classifier import Classifier  # noqa: E402
from zoo.generative.frechet import frechet_distance, gaussian_stats  # noqa: E402
from zoo.generative.grids import image_grid, save_png  # noqa: E402
from zoo.train.families import eval_key  # noqa: E402
from zoo.train.sample import load_config, restore_for_inference  # noqa: E402

COVERAGE_SHARE = 0.03  # a class counts as covered with at least this share of the samples
SEED = 0


class Judge:
    """The trained classifier: features and predicted classes of images in [0, 1]."""

    def __init__(self, workdir: str):
        inference = restore_for_inference(workdir, load_config(workdir))
        self.model, self.params, self.step = inference.model, inference.params, inference.step
        variables = {"params": self.params}
        self._features = jax.jit(lambda x: self.model.apply(variables, x,
                                                            method=Classifier.features))
        self._classes = jax.jit(lambda x: self.model.apply(variables, x).argmax(-1))

    def __call__(self, images: np.ndarray, batch: int = 500) -> tuple[np.ndarray, np.ndarray]:
        """(features [N, D], predicted classes [N]) of images [N, Y, X, C]."""
        feats, classes = [], []
        for i in range(0, len(images), batch):
            x = images[i:i + batch]
            feats.append(np.asarray(self._features(x)))
            classes.append(np.asarray(self._classes(x)))
        return np.concatenate(feats), np.concatenate(classes)


def histogram(classes: np.ndarray, num_classes: int = len(LABELS)) -> np.ndarray:
    """Share of each class among the predictions [N] -> [L]."""
    return np.bincount(classes, minlength=num_classes) / max(len(classes), 1)


def draw(workdir: str, num: int, chunk: int) -> dict:
    """Samples of a run's newest checkpoint, timed, and what its records say."""
    config = load_config(workdir)
    inference = restore_for_inference(workdir, config)
    family, model, params = inference.family, inference.model, inference.params
    key = jax.random.PRNGKey(SEED)
    images, seconds = [], []
    for i in range(0, num, chunk):
        start = time.perf_counter()
        images.append(np.asarray(family.sample_images(model, params, jax.random.fold_in(key, i),
                                                      chunk)))
        seconds.append(time.perf_counter() - start)
    per_image = (sum(seconds[1:]) / (chunk * (len(seconds) - 1)) if len(seconds) > 1
                 else seconds[0] / chunk)  # the first chunk compiles
    trainable = params.get("model", params) if isinstance(params, dict) else params
    return {"config": config, "family": family, "model": model, "params": params,
            "data": inference.data,
            "step": inference.step, "images": np.concatenate(images)[:num],
            "seconds_per_image": per_image,
            "parameters": int(sum(np.size(p) for p in jax.tree.leaves(trainable))),
            "last_eval": _last_eval(workdir)}


def _last_eval(workdir: str) -> dict:
    with open(os.path.join(workdir, "metrics.jsonl")) as f:
        evals = [r for r in map(json.loads, f) if r["split"] == "eval"]
    return evals[-1] if evals else {}


def _run_record(workdir: str) -> dict:
    """benchmarks/config_runs.py's record of the run (wall time, command), if there is one."""
    name = os.path.basename(os.path.normpath(workdir))
    path = os.path.join(common.RESULTS, "runs", f"{name}.json")
    if not os.path.exists(path):
        return {}
    with open(path) as f:
        return json.load(f)


def likelihood(workdir: str, run: dict, iwae_samples: int, iwae_images: int) -> dict:
    """Likelihood columns: bits/dim (8-bit pixels) or nats per image (binarised pixels).

    The VAE's IWAE bound costs ``iwae_samples`` decoder passes per test image, so it
    may be measured on the first ``iwae_images`` test images only; the one-sample
    negative ELBO is then measured again on the same images, beside it."""
    last = run["last_eval"]
    if run["config"].family == "vae":
        out = {"negative_elbo_nats": last.get("negative_elbo")}
        if iwae_samples:
            config = run["config"].copy_and_resolve_references()
            config.data.num_eval = min(iwae_images, config.data.num_eval)
            family = type(run["family"])(config)
            data = family.data(workdir)
            step = jax.jit(family.eval_step(run["model"]))
            elbo, count = 0.0, 0.0
            for i, batch in enumerate(data.eval_batches()):
                sums = step(run["params"], batch, eval_key(0, i))  # the evaluation's keys
                elbo, count = elbo + float(sums["elbo"]), count + float(sums["count"])
            out.update({"iwae_nll_nats": family.iwae_nll(run["model"], run["params"], data,
                                                         iwae_samples),
                        "iwae_samples": iwae_samples, "iwae_images": int(count),
                        "negative_elbo_same_images_nats": -elbo / max(count, 1.0)})
        return out
    if "bits_per_dim" in last:
        return {"bits_per_dim": last["bits_per_dim"]}
    return {}


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--classifier", required=True, help="the classifier run's workdir")
    parser.add_argument("--run", action="append", default=[], metavar="NAME=WORKDIR",
                        help="a generative model's run (repeat)")
    parser.add_argument("--num_samples", type=int, default=1000)
    parser.add_argument("--chunk", type=int, default=100, help="images drawn per call")
    parser.add_argument("--iwae_samples", type=int, default=1000,
                        help="importance samples of the VAE's IWAE bound (0: skip)")
    parser.add_argument("--iwae_images", type=int, default=10000,
                        help="the first this many test images get the IWAE bound (it costs "
                             "iwae_samples decoder passes per image)")
    parser.add_argument("--out", default=os.path.join(common.RESULTS, "generative"))
    args = parser.parse_args(argv)
    if args.num_samples < 2 or args.num_samples % args.chunk:
        raise SystemExit(f"--num_samples must be a multiple of --chunk ({args.chunk}) and >= 2, "
                         f"got {args.num_samples}")
    runs = dict(item.split("=", 1) for item in args.run)
    meta = common.environment()
    judge = Judge(args.classifier)

    test_images, test_labels = fashion_mnist.load_split("test")
    test_images = test_images[..., None].astype(np.float32) / 255.0  # [10000, 28, 28, 1]
    test_feats, test_classes = judge(test_images)
    test_stats = gaussian_stats(test_feats)
    accuracy = float(np.mean(test_classes == test_labels))
    train_images, train_labels = fashion_mnist.load_split("train")
    picked = np.random.default_rng(SEED).choice(len(train_images), args.num_samples,
                                                replace=False)
    references = {
        "real (train images)": train_images[picked],
        "one class only (train)": train_images[train_labels == np.bincount(train_labels).argmax()
                                               ][:args.num_samples],
    }
    rows, grids = [], {}
    for name, images in references.items():
        feats, classes = judge(images[..., None].astype(np.float32) / 255.0)
        hist = histogram(classes)
        rows.append({"model": name, "frechet": frechet_distance(gaussian_stats(feats), test_stats),
                     "histogram": hist.tolist(),
                     "classes_covered": int(np.sum(hist >= COVERAGE_SHARE))})
    for name, workdir in runs.items():
        print(f"{name}: drawing {args.num_samples} samples from {workdir}", flush=True)
        run = draw(workdir, args.num_samples, args.chunk)
        feats, classes = judge(run["images"])
        hist = histogram(classes)
        record = _run_record(workdir)
        rows.append({
            "model": name, "workdir": workdir, "step": run["step"],
            "model_name": run["config"].model.name, "parameters": run["parameters"],
            "frechet": frechet_distance(gaussian_stats(feats), test_stats),
            "histogram": hist.tolist(), "classes_covered": int(np.sum(hist >= COVERAGE_SHARE)),
            "seconds_per_image": run["seconds_per_image"],
            "train_wall_seconds": record.get("wall_seconds"),
            "train_command": record.get("command"),
            **likelihood(workdir, run, args.iwae_samples, args.iwae_images),
        })
        grids[name] = run["images"][:64]
        print(json.dumps({k: v for k, v in rows[-1].items() if k != "histogram"}), flush=True)

    rows += _earlier_rows(args.out, {r["model"] for r in rows}, args.num_samples)
    payload = {"classifier": {"workdir": args.classifier, "step": judge.step,
                              "test_accuracy": accuracy},
               "num_samples": args.num_samples, "rows": rows}
    common.write(args.out, meta, payload, markdown(meta, payload))
    _figure(args.out, rows, grids)
    print("\n".join(markdown(meta, payload)))


def _earlier_rows(stem: str, replaced: set[str], num_samples: int) -> list[dict]:
    """The rows of models measured by an earlier call with the same sample count (models
    are measured as their runs finish); rows of the models measured now replace theirs."""
    if not os.path.exists(stem + ".json"):
        return []
    with open(stem + ".json") as f:
        earlier = json.load(f)
    if earlier.get("num_samples") != num_samples:
        return []
    return [r for r in earlier["rows"] if r["model"] not in replaced]


def _iwae(row: dict) -> str:
    if row.get("iwae_nll_nats") is None:
        return "—"
    return (f"{row['iwae_nll_nats']:.1f} [{row['negative_elbo_same_images_nats']:.1f}] "
            f"(k = {row['iwae_samples']}, first {row['iwae_images']} test images)")


def _fmt(value, spec: str) -> str:
    return "—" if value is None else format(value, spec)


def markdown(meta: dict, payload: dict) -> list[str]:
    cls = payload["classifier"]
    lines = [f"# Generative models judged by one classifier ({payload['num_samples']} samples "
             "each)", "",
             f"Classifier: {cls['workdir']} step {cls['step']}, test accuracy "
             f"{cls['test_accuracy']:.4f}. Fréchet distance between the Gaussians of its "
             "128 penultimate-layer features of the samples and of the 10,000 test images "
             "(not an Inception FID). Classes covered: predicted classes with at least "
             f"{COVERAGE_SHARE:.0%} of the samples.", ""]
    header = ["model", "Fréchet distance", "classes covered", "bits/dim", "-ELBO (nats)",
              "IWAE NLL (nats) [-ELBO, same images]", "s / image", "train wall (s)",
              "parameters"]
    table = []
    for row in payload["rows"]:
        table.append([row["model"], _fmt(row["frechet"], ".2f"), row["classes_covered"],
                      _fmt(row.get("bits_per_dim"), ".3f"),
                      _fmt(row.get("negative_elbo_nats"), ".1f"),
                      _iwae(row),
                      _fmt(row.get("seconds_per_image"), ".4f"),
                      _fmt(row.get("train_wall_seconds"), ".0f"),
                      _fmt(row.get("parameters"), ",")])
    lines += common.table(header, table)
    lines += ["", "Class shares of the samples (" + ", ".join(LABELS) + "):", ""]
    lines += common.table(["model", *[label.split("/")[0][:7] for label in LABELS]],
                          [[row["model"], *[f"{h:.2f}" for h in row["histogram"]]]
                           for row in payload["rows"]])
    lines += ["", common.stamp_line(meta)]
    return lines


def _grid_path(stem: str, model: str) -> str:
    return f"{stem}_{model}.png"


def _figure(stem: str, rows: list[dict], grids: dict) -> None:
    """Each model's 8 x 8 sample grid (``<stem>_<model>.png``, written when it is measured)
    above its class histogram, every measured model side by side: ``<stem>.png``."""
    for name, images in grids.items():
        save_png(_grid_path(stem, name), image_grid(images, 8), scale=1)
    shown = [r for r in rows if os.path.exists(_grid_path(stem, r["model"]))]
    fig, axes = plt.subplots(2, max(len(shown), 1), figsize=(3.2 * max(len(shown), 1), 6.4),
                             squeeze=False)
    for top, bottom, row in zip(axes[0], axes[1], shown, strict=False):
        top.imshow(np.asarray(Image.open(_grid_path(stem, row["model"]))), cmap="gray",
                   vmin=0, vmax=255)
        top.set_title(row["model"], fontsize=9)
        top.axis("off")
        bottom.bar(range(len(LABELS)), row["histogram"])
        bottom.axhline(COVERAGE_SHARE, color="tab:red", linewidth=0.8)
        bottom.set_xticks(range(len(LABELS)), labels=[lb.split("/")[0][:6] for lb in LABELS],
                          rotation=90, fontsize=7)
        bottom.set_title(f"FD {row['frechet']:.1f}, {row['classes_covered']} classes",
                         fontsize=8)
    fig.tight_layout()
    fig.savefig(stem + ".png", dpi=100)
    plt.close(fig)


if __name__ == "__main__":
    main()
