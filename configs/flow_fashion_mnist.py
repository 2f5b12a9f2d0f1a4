"""RealNVP normalizing flow on Fashion-MNIST (Debian dataset-fashion-mnist): exact likelihood.

The preset ``flow_realnvp_fashion_mnist`` (two scales: 28x28x1 -> 14x14x4 -> 7x7x8, half
the channels factored out after each; affine couplings with checkerboard and channel
masks; ActNorm and Glow's 1x1 convolutions), sized for about 20-25 minutes of 2 CPU
cores: couplings of 32 channels with one residual block, two per mask and scale. Pixels
are dequantised with fresh uniform noise every step. Evaluation reports the test split's
bits/dim (all 10,000 images) and writes sample grids at temperatures 1.0 and 0.7 to
<workdir>/images/.

    make data   # once: installs dataset-fashion-mnist
    python train.py --config configs/flow_fashion_mnist.py --workdir runs/flow
    python train.py --config configs/flow_fashion_mnist.py:tiny --workdir /tmp/flow_tiny
"""

from zoo.train.config import base_config


def get_config(arg: str | None = None):
    c = base_config()
    c.family = "flow"
    c.model.name = "flow_realnvp_fashion_mnist"
    c.data.dataset = "fashion_mnist"
    c.data.fields = ("image",)
    c.data.batch_size = 64
    c.data.eval_batch_size = 500
    c.data.num_eval = 10000  # the whole test split
    c.optim.schedule = "cosine"
    c.optim.learning_rate = 1e-3
    c.optim.warmup_steps = 200
    c.optim.end_lr_ratio = 0.05
    c.optim.b2 = 0.999
    c.optim.eps = 1e-8
    c.optim.clip_grad_norm = 1.0  # a rare bad batch must not throw a flow's scales out
    c.train.num_train_steps = 3000
    c.train.log_every = 100
    c.train.eval_every = 1000
    c.train.checkpoint_every = 1000
    c.train.best_metric = "bits_per_dim"
    c.train.best_mode = "min"
    c.eval.temperatures = (1.0, 0.7)
    if arg == "tiny":
        c.model.name = "flow_tiny"  # 8 channels, one coupling per mask and scale
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
    elif arg:
        raise ValueError(f"config argument {arg!r} unknown; allowed: 'tiny'")
    return c
