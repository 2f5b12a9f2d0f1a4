"""A benchmark's --quick run inside the test process.

The smoke tests only check that each benchmark still runs and writes its
results; running its ``main`` here instead of in a new interpreter saves the
3-5 s of importing JAX and torch again.
"""

import importlib.util
import os
import sys

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
BENCHMARKS = os.path.join(ROOT, "benchmarks")


def run_quick(script: str, out) -> None:
    """``python benchmarks/<script>.py --quick --out <out>``, in this process."""
    if BENCHMARKS not in sys.path:
        sys.path.insert(0, BENCHMARKS)  # the scripts import their sibling ``common``
    spec = importlib.util.spec_from_file_location(f"benchmark_{script}",
                                                  os.path.join(BENCHMARKS, f"{script}.py"))
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    module.main(["--quick", "--out", str(out)])
