"""A small CNN classifier on Fashion-MNIST (Debian dataset-fashion-mnist): the judge of the
generative models' samples.

The preset ``classifier_cnn_fashion_mnist`` (two stages of two 3x3 convolutions and a
2x2 max-pool, 32 and 64 channels, a 128-wide feature layer with dropout 0.3) on the
official 60k/10k split. Evaluation reports the test accuracy and cross-entropy and
draws the confusion matrix. benchmarks/generative.py then uses its 128 features for
a Fréchet distance between generated and test images, and its predictions for the
class histogram of the samples. The default run (3 epochs) is sized for about
4 minutes of 2 CPU cores.

    make data   # once: installs dataset-fashion-mnist
    python train.py --config configs/classifier_fashion_mnist.py --workdir runs/classifier
    python train.py --config configs/classifier_fashion_mnist.py:tiny --workdir /tmp/cls_tiny
"""

from zoo.train.config import base_config


def get_config(arg: str | None = None):
    c = base_config()
    c.family = "classifier"
    c.model.name = "classifier_cnn_fashion_mnist"
    c.data.dataset = "fashion_mnist"
    c.data.fields = ("image", "label")
    c.data.batch_size = 128
    c.data.eval_batch_size = 500
    c.data.num_eval = 10000  # the whole test split
    c.optim.schedule = "cosine"
    c.optim.learning_rate = 2e-3
    c.optim.warmup_steps = 100
    c.optim.end_lr_ratio = 0.02
    c.optim.b2 = 0.999
    c.optim.eps = 1e-8
    c.optim.weight_decay = 1e-4
    c.train.num_train_steps = 1400  # 3 epochs of 60,000
    c.train.log_every = 100
    c.train.eval_every = 700
    c.train.checkpoint_every = 700
    c.train.best_metric = "accuracy"
    c.train.best_mode = "max"
    if arg == "tiny":
        c.model.name = "classifier_tiny"
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
