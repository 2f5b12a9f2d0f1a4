"""DCGAN on Fashion-MNIST (Debian dataset-fashion-mnist), with the fixes that stop its collapse.

The preset ``gan_dcgan_fashion_mnist`` (Z = 64; G: dense to 7x7x64, two upsamplings
with layer norm; D: two stride-2 convolutions, leaky ReLU) trained with the
well-known remedies for the mode collapse the plain DCGAN recipe showed here
(samples mostly tops, with a checkerboard texture; benchmarks/generative.py):

- G upsamples by nearest resizing + a 3x3 convolution, not transposed
  convolutions, whose uneven overlap draws checkerboards (Odena et al. 2016);
- D's kernels are spectrally normalised (Miyato et al. 2018), with the hinge loss;
- two time-scale updates (Heusel et al. 2017): D learns at 4e-4, G at 1e-4.

The step count is the plain recipe's, 3,500 of 64 images, so the two compare at one
budget. Each evaluation writes the samples of one fixed noise batch to
<workdir>/images/gan_samples_step{N}.png and reports the discriminator's mean
probability "real" on held-out test images and on fresh fakes. The plain DCGAN
recipe is this config with ``--config.model.upsample=transpose
--config.model.spectral_norm=False --config.model.loss=non_saturating
--config.optim.learning_rate=2e-4 --config.optim.d_lr_ratio=1``. The default run
is sized for about 6 minutes of 2 CPU cores.

    make data   # once: installs dataset-fashion-mnist
    python train.py --config configs/gan_fashion_mnist.py --workdir runs/gan
    python train.py --config configs/gan_fashion_mnist.py:tiny --workdir /tmp/gan_tiny
"""

from zoo.train.config import base_config


def get_config(arg: str | None = None):
    c = base_config()
    c.family = "gan"
    c.model.name = "gan_dcgan_fashion_mnist"
    c.data.dataset = "fashion_mnist"
    c.data.fields = ("image",)
    c.data.batch_size = 64
    c.data.eval_batch_size = 500
    c.data.num_eval = 2000
    c.model.upsample = "resize"
    c.model.spectral_norm = True
    c.model.loss = "hinge"
    dcgan_optimizer(c, learning_rate=1e-4)  # the generator's
    c.optim.d_lr_ratio = 4.0  # the discriminator's: 4e-4
    c.train.num_train_steps = 3500
    c.train.log_every = 100
    c.train.eval_every = 1750
    c.train.checkpoint_every = 1750
    c.train.best_metric = ""  # no metric says which GAN step is best
    if arg == "tiny":
        c.model.name = "gan_dcgan_tiny"
        c.data.batch_size = 16
        c.data.eval_batch_size = 64
        c.data.num_eval = 64
        c.train.num_train_steps = 6
        c.train.log_every = 3
        c.train.eval_every = 3
        c.train.checkpoint_every = 3
        c.train.progress_bar = False
    elif arg:
        raise ValueError(f"config argument {arg!r} unknown; allowed: 'tiny'")
    return c


def dcgan_optimizer(c, learning_rate: float):
    """Radford et al.'s recipe for both networks: constant-rate Adam(b1 0.5, b2 0.999), no clip."""
    c.optim.schedule = "constant"
    c.optim.learning_rate = learning_rate
    c.optim.b1 = 0.5
    c.optim.b2 = 0.999
    c.optim.eps = 1e-8
    c.optim.clip_grad_norm = 0.0
