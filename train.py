"""Train a zoo model from an experiment config.

    python train.py --config configs/date_seq2seq.py --workdir runs/date
    python train.py --config configs/date_seq2seq.py:tiny --workdir /tmp/t \
        --config.train.num_train_steps=10
    python train.py --workdir runs/lm --sample "a small " --num_samples 3   # a trained LM
    python train.py --workdir runs/de_en --translate "Guten Morgen."        # an encoder-decoder
    python train.py --workdir runs/de_en --translate < sentences.de          # one a line
    python train.py --workdir runs/de_en --eval_only                         # test split, best step

The work happens in ``zoo.train.train_and_evaluate``; this file only parses
flags. Re-running the same command resumes from the newest good checkpoint.
"""

import re
import sys

import jax
from absl import app, flags, logging
from ml_collections import config_flags

from zoo import distributed
from zoo.train.checkpoints import CheckpointMismatchError
from zoo.train.loop import train_and_evaluate
from zoo.train.sample import sample_from_checkpoint
from zoo.train.translation import evaluate_split, save_evaluation, translate

FLAGS = flags.FLAGS
config_flags.DEFINE_config_file("config", None, "Experiment config file (path[:arg]).",
                                lock_config=True)
flags.DEFINE_string("workdir", None, "Directory for checkpoints, metrics and pictures.")
flags.mark_flags_as_required(["workdir"])
# Sampling instead of training (zoo/train/sample.py): --config then defaults to the
# workdir's config.json.
flags.DEFINE_multi_string("sample", None, "Continue this prompt ('' = from scratch) with the "
                          "newest checkpoint of --workdir's language model instead of "
                          "training; repeat the flag for more prompts.")
flags.DEFINE_integer("num_samples", 3, "With --sample: samples per prompt.")
flags.DEFINE_integer("max_new_tokens", None, "With --sample: the longest sample in tokens "
                     "(default: the config's eval.max_decode_len).")
flags.DEFINE_float("temperature", 0.8, "With --sample: the sampling temperature.")
flags.DEFINE_integer("top_k", None, "With --sample: draw from the k likeliest tokens only.")
flags.DEFINE_integer("sample_seed", 0, "With --sample: the sampling key's seed.")
# Multi-host (zoo/distributed.py): one train.py per process, the same flags everywhere but
# --process_id. Unset flags fall back to JAX_COORDINATOR_ADDRESS / JAX_NUM_PROCESSES /
# JAX_PROCESS_ID; with no coordinator at all the run is a single process.
flags.DEFINE_string("coordinator_address", "", "host:port of process 0's coordinator.")
flags.DEFINE_integer("num_processes", 0, "Number of processes in the run.")
flags.DEFINE_integer("process_id", -1, "This process's index, 0 .. num_processes - 1.")
flags.DEFINE_integer("heartbeat_timeout_seconds", 100,
                     "Seconds without a peer's heartbeat before the run aborts with an error.")
flags.DEFINE_integer("initialization_timeout", 300,
                     "Seconds to wait for every process to join the coordinator.")
flags.DEFINE_integer("num_cpu_devices", 0,
                     "Fake CPU devices in this process (0: JAX's default); for trying a mesh "
                     "or a multi-host setup on one machine.")


# Translating instead of training (zoo/train/translation.py): the sentences are the
# arguments after the flags, or the lines of standard input when there are none.
flags.DEFINE_bool("translate", False, "Translate the sentences given as arguments (or, with "
                  "none, each line of standard input) with the newest checkpoint of "
                  "--workdir's encoder-decoder instead of training.")
flags.DEFINE_integer("beam_size", None, "With --translate or --eval_only: beam width "
                     "(1: greedy); default: the run's eval search.")
flags.DEFINE_float("length_penalty", None, "With --translate or --eval_only: the beam's length "
                   "penalty.")
flags.DEFINE_integer("max_len", None, "With --translate or --eval_only: the longest "
                     "translation in tokens.")
flags.DEFINE_integer("average", 1, "With --translate or --eval_only: use the mean parameters "
                     "of this many saved steps (checkpoint averaging), ranked as --checkpoint "
                     "ranks them; 1: one step.")
# Scoring a finished (or running) encoder-decoder on a whole split instead of training.
flags.DEFINE_bool("eval_only", False, "Translate every source of --split of the run's dataset "
                  "with the --checkpoint step of --workdir and score it (sacreBLEU, chrF, BLEU "
                  "by source length) instead of training; writes <workdir>/eval/.")
flags.DEFINE_string("split", "test", "With --eval_only: the split to score ('test', "
                    "'validation', or a TFDS slice such as 'test[:100]').")
flags.DEFINE_enum("checkpoint", "best", ["best", "latest"], "With --eval_only: the step with "
                  "the best validation score (train.best_metric) or the newest one.")


def main(argv):
    logging.set_verbosity(logging.WARNING)  # TFDS and Orbax are chatty at INFO
    if FLAGS.translate:
        _translate(argv[1:])
        return
    if len(argv) > 1:
        raise app.UsageError(f"unexpected arguments: {argv[1:]}")
    if FLAGS.eval_only:
        _eval_only()
        return
    if FLAGS.sample is not None:
        _sample()
        return
    if FLAGS.config is None:
        raise app.UsageError("--config is required (only --sample, --translate and "
                             "--eval_only run without it)")
    if FLAGS.num_cpu_devices:
        jax.config.update("jax_num_cpu_devices", FLAGS.num_cpu_devices)
    # Before anything touches a device: every process joins the coordinator first.
    distributed.initialize_distributed(
        FLAGS.coordinator_address, FLAGS.num_processes, FLAGS.process_id,
        heartbeat_timeout_seconds=FLAGS.heartbeat_timeout_seconds,
        initialization_timeout=FLAGS.initialization_timeout)
    try:
        result = train_and_evaluate(FLAGS.config, FLAGS.workdir)
    except CheckpointMismatchError as err:  # another config's run: say so, touch nothing
        raise SystemExit(f"train.py: {err}") from err
    print("final evaluation:", {k: round(v, 4) if isinstance(v, float) else v
                                for k, v in result.items()})


def _sample():
    try:
        out = sample_from_checkpoint(
            FLAGS.workdir, FLAGS.sample, num_samples=FLAGS.num_samples,
            max_new_tokens=FLAGS.max_new_tokens, temperature=FLAGS.temperature,
            top_k=FLAGS.top_k, seed=FLAGS.sample_seed, config=FLAGS.config)
    except ValueError as err:  # a wrong workdir or argument: the message says what to do
        raise SystemExit(f"train.py --sample: {err}") from err
    print(f"samples from step {out.step} of {FLAGS.workdir}:")
    for prompt, texts in zip(out.prompts, out.texts, strict=True):
        for text in texts:
            print(f"  {prompt!r} + {text!r}")


def _translate(sentences):
    if not sentences:  # a file or a pipe, one sentence a line
        sentences = [line.rstrip("\n") for line in sys.stdin if line.strip()]
        if not sentences:
            raise SystemExit("train.py --translate: no sentences: give them as arguments or as "
                             "lines on standard input")
    try:
        out = translate(FLAGS.workdir, sentences, beam_size=FLAGS.beam_size,
                        length_penalty=FLAGS.length_penalty, max_len=FLAGS.max_len,
                        average=FLAGS.average, config=FLAGS.config)
    except ValueError as err:  # a wrong workdir or argument: the message says what to do
        raise SystemExit(f"train.py --translate: {err}") from err
    print(f"translations by {_which(out.steps)} of {FLAGS.workdir}", file=sys.stderr)
    for text in out.texts:  # one line each, in input order: pipes back into files
        print(text)


def _which(steps) -> str:
    """'step 6', or 'mean of 2 steps 6, 3' for averaged checkpoints."""
    if len(steps) == 1:
        return f"step {steps[0]}"
    return f"mean of {len(steps)} steps {', '.join(map(str, steps))}"


def _eval_only():
    try:
        result = evaluate_split(FLAGS.workdir, split=FLAGS.split, checkpoint=FLAGS.checkpoint,
                                beam_size=FLAGS.beam_size, length_penalty=FLAGS.length_penalty,
                                max_len=FLAGS.max_len, average=FLAGS.average,
                                config=FLAGS.config)
    except ValueError as err:  # a wrong workdir, split or argument: the message says what to do
        raise SystemExit(f"train.py --eval_only: {err}") from err
    path = save_evaluation(FLAGS.workdir, result)
    print(f"{FLAGS.split} split of {FLAGS.workdir}, {result['checkpoint']} "
          f"{_which(result['steps'])}, "
          f"{result['num_sentences']} sentences:")
    for key, value in result.items():
        if key not in ("step", "steps", "checkpoint", "split", "num_sentences", "sources",
                       "references", "hypotheses"):
            print(f"  {key}: {round(value, 2) if isinstance(value, float) else value}")
    print(f"written to {path} (and the translations to {path[:-5]}.txt)")


def parse_flags(argv):
    """absl's flag parsing, with one change: a ``--config.*`` override naming no key of the
    config is a one-line error (ml_collections raises a bare KeyError or AttributeError,
    which would end the command with a traceback)."""
    try:
        return app.parse_flags_with_usage(argv)
    except (KeyError, AttributeError) as err:
        if not any(arg.startswith("--config.") for arg in argv):
            raise
        text = str(err)
        guess = re.search(r'Did you mean "([^"]+)" instead of "([^"]+)"', text)
        detail = (f"'{guess.group(2)}' (did you mean '{guess.group(1)}'?)" if guess else
                  "'" + re.sub(r"[\\'\"]", "", text.split("\\n")[0].split("\n")[0]) + "'")
        overrides = [arg.split("=", 1)[0] for arg in argv if arg.startswith("--config.")]
        raise SystemExit(f"train.py: a config override names no key of the config "
                         f"(overrides given: {', '.join(overrides)}): {detail}") from None


if __name__ == "__main__":
    app.run(main, flags_parser=parse_flags)
