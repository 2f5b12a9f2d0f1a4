"""An MLP GAN on a ring of 8 Gaussians in the plane: the mode-collapse check, in seconds.

No download, no Debian package: the points are generated from the seed
(``zoo/data/ring.py``). Evaluation reports how many of the 8 modes the
generator covers and the fraction of its samples within 3 standard deviations
of a mode, and draws the samples over the data,
<workdir>/images/gan_samples_step{N}.png.

    python train.py --config configs/gan_toy.py --workdir runs/gan_toy
    python train.py --config configs/gan_toy.py:tiny --workdir /tmp/gan_toy_tiny
"""

from configs.gan_fashion_mnist import dcgan_optimizer
from zoo.train.config import base_config


def get_config(arg: str | None = None):
    c = base_config()
    c.family = "gan"
    c.model.name = "gan_mlp_toy"
    c.data.dataset = "ring_of_gaussians"
    c.data.fields = ("point",)
    c.data.num_train = 20000
    c.data.num_eval = 2000
    c.data.batch_size = 256
    c.data.eval_batch_size = 1000
    dcgan_optimizer(c, learning_rate=1e-3)
    c.train.num_train_steps = 2500
    c.train.log_every = 250
    c.train.eval_every = 500
    c.train.checkpoint_every = 500
    c.train.best_metric = "high_quality"
    c.train.best_mode = "max"
    if arg == "tiny":
        c.data.num_train = 1024
        c.data.num_eval = 256
        c.data.batch_size = 64
        c.data.eval_batch_size = 128
        c.train.num_train_steps = 6
        c.train.log_every = 3
        c.train.eval_every = 3
        c.train.checkpoint_every = 3
        c.train.progress_bar = False
    elif arg:
        raise ValueError(f"config argument {arg!r} unknown; allowed: 'tiny'")
    return c
