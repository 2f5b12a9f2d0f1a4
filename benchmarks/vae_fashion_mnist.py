"""The conv VAE and the DCGAN on Fashion-MNIST, each for a fixed CPU budget.

    .venv/bin/python benchmarks/vae_fashion_mnist.py                 # ~4 + 2.5 minutes of training
    .venv/bin/python benchmarks/vae_fashion_mnist.py --vae-seconds 20 --gan-seconds 10 --out /tmp/v

Data: Fashion-MNIST from the Debian package ``dataset-fashion-mnist``
(`apt-get install dataset-fashion-mnist`), prepared once by the TFDS builder
``zoo.data.builders.fashion_mnist.FashionMnist`` into ``--data-dir`` and read
back as array_record. The official 60k/10k split.

VAE (preset ``vae_conv_fashion_mnist``, Bernoulli likelihood): pixels are
binarised, freshly each step for training (x ~ Bernoulli(grey level)), once
with a fixed seed for the test set. Trained with Adam until the wall-clock
budget runs out; reported: the test-set negative ELBO in nats per image
(one posterior sample per image; the exact marginal likelihood is higher).
GAN (preset ``gan_dcgan_fashion_mnist``, non-saturating loss): grey levels
scaled to [-1, 1], Adam(2e-4, b1=0.5) for G and D; a fixed-noise sample grid
is taken at regular intervals.

Writes PNG grids (samples, reconstructions, interpolations, GAN samples across
training) and ``--out``.{md,json} stamped with device, versions and date.
"""

from __future__ import annotations

import argparse
import datetime
import json
import os
import platform
import time

import flax
import jax
import jax.numpy as jnp
import numpy as np
import optax
import tensorflow_datasets as tfds

from zoo import registry
from zoo.data.builders.base import prepare
from zoo.data.builders.fashion_mnist import FashionMnist
from zoo.generative import (
    VAE,
    GANState,
    VAEState,
    gan_samples,
    gan_train_step,
    vae_eval_step,
    vae_train_step,
)
from zoo.generative.grids import image_grid, save_png

RESULTS = os.path.join(os.path.dirname(__file__), "results")


def load(data_dir: str) -> dict[str, np.ndarray]:
    """split -> float32 [B, 28, 28, 1] grey levels in [0, 1], via the TFDS builder."""
    tfds.disable_progress_bar()
    builder = prepare(FashionMnist(data_dir=data_dir))
    out = {}
    for split in ("train", "test"):
        source = builder.as_data_source(split=split)
        records = source.__getitems__(range(len(source)))
        out[split] = np.stack([r["image"] for r in records]).astype(np.float32) / 255.0
    return out


def train_vae(train, test, seconds: float, batch_size: int, key):
    vae = registry.build("vae_conv_fashion_mnist")
    state = VAEState.create(vae, vae.init(key, jnp.asarray(train[:2]), key), optax.adam(1e-3))
    rng = np.random.default_rng(0)
    start, losses = None, []  # the clock starts after the first (compiling) step
    while start is None or time.perf_counter() - start < seconds:
        idx = rng.integers(0, len(train), batch_size)
        x = (rng.random((batch_size, 28, 28, 1), np.float32) < train[idx]).astype(np.float32)
        state, metrics = vae_train_step(state, jnp.asarray(x), key)
        losses.append(metrics["loss"])
        if start is None:
            jax.block_until_ready(metrics)
            start = time.perf_counter()
    jax.block_until_ready(state)
    train_seconds = time.perf_counter() - start
    binary_test = np.random.default_rng(1).random(test.shape, np.float32) < test
    binary_test = binary_test.astype(np.float32)
    sums = [vae_eval_step(state, jnp.asarray(binary_test[i:i + 1000]), jax.random.PRNGKey(i))
            for i in range(0, len(test), 1000)]
    total = {k: float(sum(s[k] for s in sums)) for k in sums[0]}
    return state, binary_test, {
        "steps": int(state.step), "batch_size": batch_size, "train_seconds": train_seconds,
        "final_train_loss_last100": float(np.mean([float(v) for v in losses[-100:]])),
        "test_negative_elbo_nats": -total["elbo_sum"] / total["count"],
        "test_kl_nats": total["kl_sum"] / total["count"],
        "params": sum(p.size for p in jax.tree.leaves(state.params)),
    }


def vae_grids(state, test, out_dir: str, key) -> list[str]:
    vae, params = state.model, state.params
    samples = vae.apply(params, key, 64, method=VAE.sample)  # [64, 28, 28, 1]
    x = jnp.asarray(test[:32])
    recon = vae.apply(params, x, method=VAE.reconstruct)  # [32, 28, 28, 1]
    pairs = jnp.stack([x, recon], axis=1).reshape(64, 28, 28, 1)  # original, reconstruction
    path = vae.apply(params, x[0:8], x[8:16], 10, method=VAE.interpolate)  # [8, 10, 28, 28, 1]
    files = {"vae_fashion_mnist.samples.png": image_grid(samples, 8),
             "vae_fashion_mnist.reconstructions.png": image_grid(pairs, 8),
             "vae_fashion_mnist.interpolations.png": image_grid(path.reshape(80, 28, 28, 1), 10)}
    for name, grid in files.items():
        save_png(os.path.join(out_dir, name), grid)
    return list(files)


def train_gan(train, seconds: float, batch_size: int, snapshots: int, key, out_dir: str):
    gan = registry.build("gan_dcgan_fashion_mnist")
    z0 = jnp.zeros((2, gan.config.latent_dim))
    params = gan.init(key, z0, jnp.zeros((2, 28, 28, 1)))
    tx = optax.adam(2e-4, b1=0.5)
    state = GANState.create(gan, params, g_tx=tx, d_tx=tx)
    noise = jax.random.normal(jax.random.PRNGKey(7), (10, gan.config.latent_dim))  # fixed
    rng = np.random.default_rng(0)
    rows = [(0, gan_samples(state, noise))]
    x = train[rng.integers(0, len(train), batch_size)] * 2 - 1  # [-1, 1]
    state, last = gan_train_step(state, jnp.asarray(x), key)  # compiles; then the clock starts
    jax.block_until_ready(last)
    start, next_snapshot = time.perf_counter(), seconds / (snapshots - 1)
    while True:
        elapsed = time.perf_counter() - start
        if elapsed >= next_snapshot:
            rows.append((int(state.step), gan_samples(state, noise)))
            next_snapshot += seconds / (snapshots - 1)
        if elapsed >= seconds:
            break
        x = train[rng.integers(0, len(train), batch_size)] * 2 - 1  # [-1, 1]
        state, last = gan_train_step(state, jnp.asarray(x), key)
    grid = image_grid(jnp.concatenate([r for _, r in rows]), 10, value_range=(-1.0, 1.0))
    save_png(os.path.join(out_dir, "gan_fashion_mnist.png"), grid)
    return {"steps": int(state.step), "batch_size": batch_size,
            "train_seconds": time.perf_counter() - start,
            "snapshot_steps": [s for s, _ in rows],
            "final": {k: float(v) for k, v in last.items()},
            "params": sum(p.size for p in jax.tree.leaves(state.params))}


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--vae-seconds", type=float, default=240.0)
    parser.add_argument("--gan-seconds", type=float, default=150.0)
    parser.add_argument("--batch-size", type=int, default=128)
    parser.add_argument("--data-dir", default=os.path.expanduser("~/tensorflow_datasets"))
    parser.add_argument("--out", default=os.path.join(RESULTS, "vae_fashion_mnist"))
    args = parser.parse_args()
    out_dir = os.path.dirname(os.path.abspath(args.out))
    os.makedirs(out_dir, exist_ok=True)

    data = load(args.data_dir)
    key = jax.random.PRNGKey(0)
    state, test, vae = train_vae(data["train"], data["test"], args.vae_seconds, args.batch_size,
                                 key)
    pngs = vae_grids(state, test, out_dir, key)
    gan = train_gan(data["train"], args.gan_seconds, 64, 6, key, out_dir)
    pngs.append("gan_fashion_mnist.png")

    stamp = {
        "date": datetime.datetime.now(datetime.UTC).isoformat(timespec="seconds"),
        "device": f"{jax.devices()[0].platform} ({platform.processor() or platform.machine()}, "
                  f"{os.cpu_count()} cores)",
        "versions": {"python": platform.python_version(), "jax": jax.__version__,
                     "flax": flax.__version__, "optax": optax.__version__},
    }
    result = {**stamp, "vae": vae, "gan": gan, "pngs": pngs}
    with open(args.out + ".json", "w") as f:
        json.dump(result, f, indent=2)
    v = stamp["versions"]
    md = [
        f"# Conv VAE and DCGAN on Fashion-MNIST ({stamp['date']})", "",
        f"Device: {stamp['device']}; python {v['python']}, jax {v['jax']}, "
        f"flax {v['flax']}, optax {v['optax']}.", "",
        "| model | training budget (wall clock, 2 shared CPU cores) | steps x batch | params "
        "| test negative ELBO (nats / image) |",
        "| --- | --- | --- | --- | --- |",
        f"| `vae_conv_fashion_mnist` (Bernoulli, Z=16) | {vae['train_seconds']:.0f} s wall | "
        f"{vae['steps']} x {vae['batch_size']} | {vae['params']:,} | "
        f"{vae['test_negative_elbo_nats']:.1f} (KL {vae['test_kl_nats']:.1f}) |",
        f"| `gan_dcgan_fashion_mnist` (non-saturating) | {gan['train_seconds']:.0f} s wall | "
        f"{gan['steps']} x {gan['batch_size']} | {gan['params']:,} | - |", "",
        "Test set binarised once (seed 1); one posterior sample per image, so the ELBO is a "
        "stochastic lower bound on log p(x).", "",
        "![VAE samples](vae_fashion_mnist.samples.png) "
        "![reconstructions: original, reconstruction](vae_fashion_mnist.reconstructions.png)", "",
        "![interpolations between test images](vae_fashion_mnist.interpolations.png)", "",
        f"GAN samples from fixed noise, one row per snapshot (steps {gan['snapshot_steps']}):", "",
        "![GAN samples across training](gan_fashion_mnist.png)", "",
    ]
    with open(args.out + ".md", "w") as f:
        f.write("\n".join(md))
    print("\n".join(md))


if __name__ == "__main__":
    main()
