"""Training: one loop (``train_and_evaluate``) over typed families, one state, one step.

    from zoo.train import train_and_evaluate
    train_and_evaluate(config, workdir)       # what train.py runs

Layers inside: ``state`` (TrainState, make_train_step: the core every family
plugs its losses into), ``families/`` (what differs per kind of model),
``loop`` (optimizer, sharding, cadence, checkpoints), ``checkpoints`` (the one
module that saves and restores), ``sample`` (reading a run for inference, and
sampling a language model), ``translation`` (translating with an
encoder-decoder), ``imports`` (a Hugging Face Marian checkpoint as a run), ``plan`` (the
memory planner command line).
"""

from zoo.train.imports import import_marian
from zoo.train.loop import train_and_evaluate
from zoo.train.sample import sample_from_checkpoint
from zoo.train.state import Phase, TrainState, make_eval_step, make_train_step
from zoo.train.translation import evaluate_split, translate

__all__ = ["Phase", "TrainState", "import_marian", "make_eval_step", "make_train_step",
           "sample_from_checkpoint", "train_and_evaluate", "translate", "evaluate_split"]
