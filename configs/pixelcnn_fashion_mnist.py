"""Gated PixelCNN on Fashion-MNIST (Debian dataset-fashion-mnist): 8-bit pixels, 256-way softmax.

The preset ``pixelcnn_fashion_mnist`` (a 7-wide type-A layer and five 3x3
gated layers of 32 channels) on the official 60k/10k split, trained on the
exact likelihood of the raw grey levels (no binarisation, no dequantisation).
Evaluation reports the test-set negative log-likelihood of all 10,000 test
images in bits per dimension and draws ``eval.num_samples`` images one pixel
at a time (784 forward passes each, so few images, evaluated twice per run) to
<workdir>/images/. The default run (2800 steps of 32 images, about 1.5 epochs) is
sized for about 22 minutes of 2 CPU cores.

    make data   # once: installs dataset-fashion-mnist
    python train.py --config configs/pixelcnn_fashion_mnist.py --workdir runs/pixelcnn
    python train.py --config configs/pixelcnn_fashion_mnist.py:tiny --workdir /tmp/pixelcnn_tiny
"""

from zoo.train.config import base_config


def get_config(arg: str | None = None):
    c = base_config()
    c.family = "pixelcnn"
    c.model.name = "pixelcnn_fashion_mnist"
    c.data.dataset = "fashion_mnist"
    c.data.fields = ("image",)
    c.data.batch_size = 32
    c.data.eval_batch_size = 500
    c.data.num_eval = 10000  # the whole test split
    c.optim.schedule = "cosine"
    c.optim.learning_rate = 2e-3
    c.optim.warmup_steps = 200
    c.optim.end_lr_ratio = 0.05
    c.optim.b2 = 0.999
    c.optim.eps = 1e-8
    c.optim.clip_grad_norm = 1.0
    c.train.num_train_steps = 2800  # ~0.4 s a step: ~19 min + 2 evaluations
    c.train.log_every = 100
    c.train.eval_every = 1400  # twice: each evaluation reads 10k images and samples
    c.train.checkpoint_every = 1400
    c.train.best_metric = "bits_per_dim"
    c.train.best_mode = "min"
    c.eval.num_samples = 25  # a 5 x 5 grid: 784 forward passes of 25 images, ~30 s
    if arg == "tiny":
        c.model.name = "pixelcnn_tiny"  # 8 channels, 2 layers
        c.data.batch_size = 16
        c.data.eval_batch_size = 64
        c.data.num_eval = 128
        c.eval.num_samples = 4
        c.train.num_train_steps = 6
        c.train.log_every = 3
        c.train.eval_every = 3
        c.train.checkpoint_every = 3
        c.train.progress_bar = False
    elif arg:
        raise ValueError(f"config argument {arg!r} unknown; allowed: 'tiny'")
    return c
