"""DDPM on Fashion-MNIST (Debian dataset-fashion-mnist): a small U-Net predicting the noise.

The preset ``ddpm_fashion_mnist`` (U-Net of 24/48/48 channels at 28/14/7 pixels, one
residual block per level, self-attention at 7x7; 1000 steps of the cosine schedule) on
the 60k training images scaled to [-1, 1], Adam with warm-up and cosine decay, an EMA
of the parameters (decay 0.999) for evaluation. Each evaluation reports the test
eps-MSE and writes a sample grid and denoising trajectories drawn by ``eval.sampler``
over ``eval.sample_steps`` timesteps to <workdir>/images/. The default run is sized
for about 15 minutes of 2 CPU cores.

    make data   # once: installs dataset-fashion-mnist
    python train.py --config configs/diffusion_fashion_mnist.py --workdir runs/diffusion
    python train.py --config configs/diffusion_fashion_mnist.py --workdir runs/diffusion \\
        --config.eval.sample_steps=1000 --config.eval.sampler=ancestral   # plain DDPM
    python train.py --config configs/diffusion_fashion_mnist.py:tiny --workdir /tmp/ddpm_tiny
"""

from zoo.train.config import base_config


def get_config(arg: str | None = None):
    c = base_config()
    c.family = "diffusion"
    c.model.name = "ddpm_fashion_mnist"
    c.data.dataset = "fashion_mnist"
    c.data.fields = ("image",)
    c.data.batch_size = 64
    c.data.eval_batch_size = 500
    c.data.num_eval = 2000
    c.optim.schedule = "cosine"
    c.optim.learning_rate = 1e-3
    c.optim.warmup_steps = 200
    c.optim.end_lr_ratio = 0.1
    c.optim.b2 = 0.999
    c.optim.eps = 1e-8
    c.optim.clip_grad_norm = 1.0
    c.train.num_train_steps = 800  # ~1.0 s per step of 64 images on 2 idle cores
    c.train.log_every = 100
    c.train.eval_every = 800  # ~1.5 min each: 2 x 2000 test losses, 64 samples of 100 steps
    c.train.checkpoint_every = 400
    c.train.best_metric = "eps_mse"
    c.train.best_mode = "min"
    c.eval.num_samples = 64
    c.eval.sampler = "ddim"
    c.eval.sample_steps = 100
    if arg == "tiny":
        c.model.name = "ddpm_tiny"  # 8/16 channels at 28/14, 50 timesteps
        c.data.batch_size = 16
        c.data.eval_batch_size = 64
        c.data.num_eval = 128
        c.optim.warmup_steps = 2
        c.train.num_train_steps = 6
        c.train.log_every = 3
        c.train.eval_every = 3
        c.train.checkpoint_every = 3
        c.train.progress_bar = False
        c.eval.num_samples = 16
        c.eval.sample_steps = 10
    elif arg:
        raise ValueError(f"config argument {arg!r} unknown; allowed: 'tiny'")
    return c
