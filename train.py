"""Train a zoo model from an experiment config.

    python train.py --config configs/date_seq2seq.py --workdir runs/date
    python train.py --config configs/date_seq2seq.py:tiny --workdir /tmp/t \
        --config.train.num_train_steps=10

The work happens in ``zoo.train.train_and_evaluate``; this file only parses
flags. Re-running the same command resumes from the newest good checkpoint.
"""

from absl import app, flags, logging
from ml_collections import config_flags

from zoo.train.loop import train_and_evaluate

FLAGS = flags.FLAGS
config_flags.DEFINE_config_file("config", None, "Experiment config file (path[:arg]).",
                                lock_config=True)
flags.DEFINE_string("workdir", None, "Directory for checkpoints, metrics and pictures.")
flags.mark_flags_as_required(["config", "workdir"])


def main(argv):
    if len(argv) > 1:
        raise app.UsageError(f"unexpected arguments: {argv[1:]}")
    logging.set_verbosity(logging.WARNING)  # TFDS and Orbax are chatty at INFO
    result = train_and_evaluate(FLAGS.config, FLAGS.workdir)
    print("final evaluation:", {k: round(v, 4) if isinstance(v, float) else v
                                for k, v in result.items()})


if __name__ == "__main__":
    app.run(main)
