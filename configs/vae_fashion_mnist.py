"""Convolutional VAE on Fashion-MNIST (Debian dataset-fashion-mnist), Bernoulli pixels.

The preset ``vae_conv_fashion_mnist`` (two stride-2 convolutions of 32 and 64
channels, latent Z = 16) on the official 60k/10k split, pixels binarised afresh
every step. Evaluation reports the negative ELBO of the 10,000 test images in
nats per image and writes sample, reconstruction and interpolation grids to
<workdir>/images/. The default run is sized for about 6 minutes of 2 CPU cores.

    make data   # once: installs dataset-fashion-mnist
    python train.py --config configs/vae_fashion_mnist.py --workdir runs/vae
    python train.py --config configs/vae_fashion_mnist.py:tiny --workdir /tmp/vae_tiny
"""

from zoo.train.config import base_config


def get_config(arg: str | None = None):
    c = base_config()
    c.family = "vae"
    c.model.name = "vae_conv_fashion_mnist"
    c.data.dataset = "fashion_mnist"
    c.data.fields = ("image",)
    c.data.batch_size = 128
    c.data.eval_batch_size = 500
    c.data.num_eval = 10000  # the whole test split
    c.optim.schedule = "cosine"
    c.optim.learning_rate = 2e-3
    c.optim.warmup_steps = 100
    c.optim.end_lr_ratio = 0.05
    c.optim.b2 = 0.999
    c.optim.eps = 1e-8
    c.optim.clip_grad_norm = 0.0  # off: the loss sums over pixels; Adam rescales anyway
    c.train.num_train_steps = 2400
    c.train.log_every = 100
    c.train.eval_every = 800
    c.train.checkpoint_every = 800
    c.train.best_metric = "negative_elbo"
    c.train.best_mode = "min"
    if arg == "tiny":
        c.model.name = "vae_tiny"  # an MLP, hidden 32, Z = 4
        c.data.batch_size = 16
        c.data.eval_batch_size = 64
        c.data.num_eval = 128
        c.train.num_train_steps = 6
        c.train.log_every = 3
        c.train.eval_every = 3
        c.train.checkpoint_every = 3
        c.train.progress_bar = False
    elif arg:
        raise ValueError(f"config argument {arg!r} unknown; allowed: 'tiny'")
    return c
