"""An energy-based model on a ring of 8 Gaussians in the plane: Langevin sampling, in minutes.

An MLP energy E(x) (swish, 128 x 128) trained by contrastive divergence, its
negatives drawn by 40 Langevin steps from a persistent buffer of 8192 points
(5% of the chains restarted from uniform noise; Du & Mordatch 2019). No
download, no Debian package: the points are generated from the seed
(``zoo/data/ring.py``). Evaluation runs 2000 chains of ``eval.sample_steps``
Langevin steps from fresh uniform noise and reports how many of the 8 modes
they cover and the fraction within 3 standard deviations of a mode (the toy
GAN's measure), the mean energy of test points and of the samples, and draws
the energy landscape, <workdir>/images/ebm_energy_step{N}.png, and the samples
over the data, <workdir>/images/ebm_samples_step{N}.png.

    python train.py --config configs/ebm_toy.py --workdir runs/ebm_toy
    python train.py --config configs/ebm_toy.py:tiny --workdir /tmp/ebm_toy_tiny
"""

from zoo.train.config import base_config


def get_config(arg: str | None = None):
    c = base_config()
    c.family = "ebm"
    c.model.name = "ebm_mlp_toy"
    c.data.dataset = "ring_of_gaussians"
    c.data.fields = ("point",)
    c.data.num_train = 20000
    c.data.num_eval = 2000
    c.data.batch_size = 256
    c.data.eval_batch_size = 1000
    c.optim.schedule = "constant"
    c.optim.learning_rate = 1e-3
    c.optim.warmup_steps = 0
    c.optim.b2 = 0.999
    c.optim.eps = 1e-8
    c.optim.clip_grad_norm = 0.0
    c.eval.sample_steps = 200  # Langevin steps of each evaluation chain, from fresh noise
    c.train.num_train_steps = 2000
    c.train.log_every = 250
    c.train.eval_every = 500
    c.train.checkpoint_every = 500
    c.train.best_metric = "high_quality"
    c.train.best_mode = "max"
    if arg == "tiny":
        c.model.name = "ebm_tiny"  # hidden 16 x 16, 5 Langevin steps, a 64-point buffer
        c.data.num_train = 1024
        c.data.num_eval = 256
        c.data.batch_size = 16
        c.data.eval_batch_size = 128
        c.eval.sample_steps = 20
        c.train.num_train_steps = 6
        c.train.log_every = 3
        c.train.eval_every = 3
        c.train.checkpoint_every = 3
        c.train.progress_bar = False
    elif arg:
        raise ValueError(f"config argument {arg!r} unknown; allowed: 'tiny'")
    return c
