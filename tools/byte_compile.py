"""Writes the bytecode of every module the project's commands import, after an install
with ``pip install --no-compile``.

pip byte-compiles every file of every package it installs, one after another:
about 45 of the 85 seconds a fresh ``make`` install takes, mostly for files
nothing here imports (the rest of torch, transformers' hundreds of models). The
modules that ``train.py``, the tests and the benchmarks' torch peers do import
are written here instead, by importing them once with bytecode writing on. A
module first imported later (a lazily loaded corner of a library) is compiled
when it is imported, as Python always does.

    python tools/byte_compile.py    # the Makefile runs it after installing
"""

import importlib
import sys

sys.dont_write_bytecode = False  # write what is imported below, even under PYTHONDONTWRITEBYTECODE

# What train.py, the test suite and the benchmarks' peers import (the optional ones if installed).
REQUIRED = ["zoo", "zoo.train.loop", "zoo.train.translation", "zoo.train.tensorboard",
            "zoo.interop", "tensorflow_datasets", "grain", "orbax.checkpoint", "sacrebleu",
            "sentencepiece", "matplotlib.pyplot", "ml_collections.config_flags", "absl.app"]
OPTIONAL = ["torch", "transformers", "transformers.models.marian.modeling_marian", "pytest",
            "xdist", "hypothesis", "tensorboard.backend.event_processing.event_accumulator"]


def main() -> None:
    before = len(sys.modules)
    for name in REQUIRED:
        importlib.import_module(name)
    for name in OPTIONAL:
        try:
            importlib.import_module(name)
        except ImportError:
            pass
    print(f"byte_compile: {len(sys.modules) - before} modules imported and written")


if __name__ == "__main__":
    main()
