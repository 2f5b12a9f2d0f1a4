"""Test-wide JAX settings: 8 fake CPU devices, strict rank promotion, a compilation cache.

All must be set before JAX initialises its backends, i.e. before any test
module runs a JAX computation, which is why they live here.

Many tests train the same tiny models end to end (in this process, in the
other xdist worker, and in train.py subprocesses, which inherit the
environment). XLA's persistent compilation cache lets every one after the
first reuse the compiled programs instead of compiling them again: the same
computations, compiled once. The cache lives in ``.cache/jax`` of the checkout
(ignored by git); entries are keyed by the program, the compiler flags and the
JAX version, so a stale entry is never used. Programs that compile in under
0.2 s (the one-op programs of eager code) are not written: writing thousands of
them cost more than reading them back saved.

The suite compiles thousands of small programs and runs most of them once or a
few times, so compiling is most of its time. XLA's CPU backend is told to
compile fast rather than run fast (``FAST_COMPILE_FLAGS``): no LLVM
optimisation passes, the older elemental emitters for fusions instead of the
newer MLIR ones, and one code-generation thread (the xdist workers, one more
than there are cores, already use them all). Together they cut compile times
about threefold on small programs. XLA's own graph passes (fusion, layouts)
still run; values can differ from the default build in the last bits (other
code for exp or tanh), which every tolerance here allows, and every comparison
of two runs compiles both with the same flags. The benchmarks, run by hand,
keep the default flags; their smoke tests (tests/benchmarks) only check that
they run.
"""

import os

import pytest

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
os.environ.setdefault("XLA_PYTHON_CLIENT_PREALLOCATE", "false")
os.environ.setdefault("JAX_COMPILATION_CACHE_DIR", os.path.join(ROOT, ".cache", "jax"))
os.environ.setdefault("JAX_PERSISTENT_CACHE_MIN_COMPILE_TIME_SECS", "0.2")
# The peak FLOP/s probe's cache (zoo/train/telemetry.py): a probe measured beside the other
# worker's tests must not become the machine's figure for real runs.
os.environ["ZOO_CACHE_DIR"] = os.path.join(ROOT, ".cache", "zoo-tests")
# Compile fast rather than run fast: see the module docstring. A flag the user set wins.
FAST_COMPILE_FLAGS = {
    "xla_backend_optimization_level": "0",
    "xla_cpu_use_fusion_emitters": "false",
    "xla_cpu_parallel_codegen_split_count": "1",
}
_flags = os.environ.get("XLA_FLAGS", "")
os.environ["XLA_FLAGS"] = " ".join(
    [_flags] + [f"--{k}={v}" for k, v in FAST_COMPILE_FLAGS.items() if k not in _flags]).strip()
# One OpenMP thread for torch (the interop tests and the benchmarks' peers, here and in
# subprocesses, which inherit this): the suite already runs more xdist workers than cores,
# and torch's OpenMP threads spin while they wait for a busy core.
os.environ.setdefault("OMP_NUM_THREADS", "1")

import jax  # noqa: E402

jax.config.update("jax_platforms", "cpu")
jax.config.update("jax_num_cpu_devices", 8)
jax.config.update("jax_numpy_rank_promotion", "raise")


@pytest.fixture(scope="session")
def shared_data_dir(tmp_path_factory, worker_id):
    """One TFDS data_dir for the whole test run, shared by both xdist workers: each corpus
    is prepared once (Fashion-MNIST alone takes ~10 s) and then read by every test that
    trains on it. Fresh each run: nothing outlives the session's temporary folder."""
    root = tmp_path_factory.getbasetemp()
    path = (root if worker_id == "master" else root.parent) / "shared_tfds"
    path.mkdir(exist_ok=True)
    return str(path)
