"""What a training job reports about itself: the model summary, the FLOPs of a step, the
machine's peak FLOP/s and a profiler window.

FLOPs: XLA's cost analysis of a compiled step counts the body of a loop once,
whatever its trip count (a ``lax.scan`` over 10 time steps reports the FLOPs
of one), so for every RNN and every scanned layer stack it would be 10-100x
too low. ``jaxpr_flops`` (the loop's, on the jitted step's own trace) and
``step_flops`` (on any function) therefore count from the jaxpr: two FLOPs per
multiply-add of every matrix product (``dot_general``) and convolution, each
loop body times its trip count, forward, backward and optimizer alike. That is
the numerator of model-FLOPs utilisation as it is usually defined (matmuls
only; elementwise work is left out). On a loop-free step it agrees with XLA's
count of those products (tests/train/test_telemetry.py checks both).
"""

from __future__ import annotations

import contextlib
import json
import math
import os
import time
from collections.abc import Callable

import jax
import jax.numpy as jnp
import numpy as np
from jax.extend import core as jex_core

# ---------------------------------------------------------------------------- model summary


def model_summary(params, title: str = "") -> str:
    """A table of the parameters per module (the path of each leaf's parent), with
    shapes, counts and bytes, and the totals."""
    rows, total, total_bytes = [], 0, 0
    by_module: dict[str, list] = {}
    for path, leaf in jax.tree_util.tree_leaves_with_path(params):
        names = [str(getattr(k, "key", getattr(k, "name", k))) for k in path]
        by_module.setdefault("/".join(names[:-1]) or "(top)", []).append((names[-1], leaf))
    for module, leaves in by_module.items():
        count = sum(int(np.prod(leaf.shape)) for _, leaf in leaves)
        nbytes = sum(int(np.prod(leaf.shape)) * jnp.dtype(leaf.dtype).itemsize
                     for _, leaf in leaves)
        shapes = ", ".join(f"{name} {'x'.join(map(str, leaf.shape)) or 'scalar'} "
                           f"{jnp.dtype(leaf.dtype).name}" for name, leaf in leaves)
        rows.append((module, shapes, f"{count:,}", _bytes(nbytes)))
        total, total_bytes = total + count, total_bytes + nbytes
    header = ("module", "parameters", "count", "bytes")
    rows.append(("total", "", f"{total:,}", _bytes(total_bytes)))
    widths = [max(len(r[i]) for r in [header, *rows]) for i in range(4)]
    line = "  ".join("-" * w for w in widths)

    def fmt(row):
        return "  ".join(c.ljust(w) if i < 2 else c.rjust(w)
                         for i, (c, w) in enumerate(zip(row, widths, strict=True)))

    out = [title] if title else []
    out += [fmt(header), line, *map(fmt, rows[:-1]), line, fmt(rows[-1])]
    return "\n".join(out) + "\n"


def _bytes(n: int) -> str:
    if n < 1024:
        return f"{n} B"
    for unit in ("KiB", "MiB", "GiB"):
        n /= 1024
        if n < 1024 or unit == "GiB":
            return f"{n:.1f} {unit}"


# ---------------------------------------------------------------------------- FLOPs


def step_flops(fn: Callable, *args) -> float:
    """FLOPs of the matrix products and convolutions of ``fn(*args)``, loops counted by
    their trip counts (see the module docstring)."""
    return jaxpr_flops(jax.make_jaxpr(fn)(*args))


def jaxpr_flops(closed) -> float:
    """``step_flops`` of a traced function's ClosedJaxpr (``jax.jit(f).trace(*args).jaxpr``:
    the trace the next call of the jitted function reuses, so counting costs no second
    trace)."""
    return float(_jaxpr_flops(closed.jaxpr))


def _jaxpr_flops(jaxpr) -> int:
    total = 0
    for eqn in jaxpr.eqns:
        name = eqn.primitive.name
        if name == "dot_general":
            total += _dot_flops(eqn)
        elif name == "conv_general_dilated":
            total += _conv_flops(eqn)
        elif name == "scan":
            total += eqn.params["length"] * _jaxpr_flops(eqn.params["jaxpr"].jaxpr)
        elif name == "cond":  # the costliest branch
            total += max(_jaxpr_flops(b.jaxpr) for b in eqn.params["branches"])
        else:  # jit, remat, custom_jvp/vjp, while (its trip count is unknown: once)
            for sub in jex_core.jaxprs_in_params(eqn.params):
                total += _jaxpr_flops(sub)
    return total


def _dot_flops(eqn) -> int:
    """2 x every output element x the contracted size (batch dimensions are in the output)."""
    lhs = eqn.invars[0].aval.shape
    (lhs_contract, _), _ = eqn.params["dimension_numbers"]
    return 2 * math.prod(eqn.outvars[0].aval.shape) * math.prod(lhs[d] for d in lhs_contract)


def _conv_flops(eqn) -> int:
    rhs = eqn.invars[1].aval.shape
    spec = eqn.params["dimension_numbers"].rhs_spec  # (out features, in features, *spatial)
    per_output = math.prod(rhs[d] for d in spec[1:])  # in features / groups x window
    return 2 * math.prod(eqn.outvars[0].aval.shape) * per_output


# ---------------------------------------------------------------------------- peak FLOP/s

PROBE_SIZE = 1024


def peak_flops(configured: float = 0.0, cache_dir: str | None = None) -> float:
    """FLOP/s one device can reach: ``configured`` when > 0, else the best float32 matmul
    rate this machine has shown (a few [1024, 1024] products, best of the rounds).

    The figure is kept in ``$ZOO_CACHE_DIR/peak_flops.json`` (default ``~/.cache/zoo``;
    keyed by the device kind, core count and JAX version), and every call probes again
    (well under a second) and keeps the higher of the two: a probe taken beside another
    job reads low, and a figure cached from one such probe once made a quiet flow run
    report an MFU of 1.05 (a 56 GFLOP/s probe on a machine whose matmul reaches 175).
    The tests point ``ZOO_CACHE_DIR`` elsewhere, so their busy probes never reach a real
    run's cache.
    """
    if configured > 0:
        return float(configured)
    device = jax.local_devices()[0]  # this process's own: another's cannot be written to
    key = f"{device.platform}/{device.device_kind}/{os.cpu_count()} cores/jax {jax.__version__}"
    folder = cache_dir or os.environ.get("ZOO_CACHE_DIR") or os.path.join(
        os.environ.get("XDG_CACHE_HOME", os.path.expanduser("~/.cache")), "zoo")
    path = os.path.join(folder, "peak_flops.json")
    cached = {}
    if os.path.exists(path):
        try:
            with open(path) as f:
                cached = json.load(f)
        except (OSError, json.JSONDecodeError):
            cached = {}
    measured = _probe(device)
    if measured > cached.get(key, 0.0):
        cached[key] = measured
        try:
            os.makedirs(folder, exist_ok=True)
            tmp = f"{path}.{os.getpid()}.tmp"  # processes probing at once never share it
            with open(tmp, "w") as f:
                json.dump(cached, f, indent=1)
            os.replace(tmp, path)
        except OSError:
            pass  # a read-only home: this run's probe is the figure
    return float(cached[key])


def _probe(device, rounds: int = 5) -> float:
    n = PROBE_SIZE
    a = jax.device_put(jnp.ones((n, n), jnp.float32), device)
    matmul = jax.jit(lambda x: x @ x)
    matmul(a).block_until_ready()
    best = math.inf
    for _ in range(rounds):
        tick = time.perf_counter()
        matmul(a).block_until_ready()
        best = min(best, time.perf_counter() - tick)
    return 2 * n**3 / best


# ---------------------------------------------------------------------------- profiler


class ProfileWindow:
    """A ``jax.profiler`` trace of train steps ``first``..``last`` (1-based, inclusive) into
    ``folder``; ``()`` profiles nothing. Call ``before(step)`` ahead of the step that
    ends with ``step`` done and ``after(step, state)`` once it returned.

    The trace holds the XLA ops on the devices and the host threads' annotated work;
    ``python=True`` adds every Python call in the window (of all threads: the data
    pipeline's, the checkpointer's), which grew a two-step trace of the tiny date job
    from 3 MB to 38 MB and its writing from 1 s to 20 s, so it is off unless asked for.
    """

    def __init__(self, steps, folder: str, start: int = 0, python: bool = False):
        self.first, self.last = (tuple(steps) or (0, 0))
        self.folder = folder
        self.python = python
        self.enabled = bool(steps) and start < self.first
        self.active = False

    def before(self, step: int) -> None:
        if self.enabled and step == self.first:
            options = jax.profiler.ProfileOptions()
            options.python_tracer_level = int(self.python)
            jax.profiler.start_trace(self.folder, create_perfetto_trace=True,
                                     profiler_options=options)
            self.active = True

    def annotation(self, step: int):
        """A step marker for the profile's step view (nothing outside the window)."""
        if not self.active:
            return contextlib.nullcontext()
        return jax.profiler.StepTraceAnnotation("train", step_num=step)

    def after(self, step: int, state) -> None:
        if self.active and step == self.last:
            jax.block_until_ready(state)
            jax.profiler.stop_trace()
            self.active = False
            print(f"profile of steps {self.first}-{self.last} written to {self.folder}")

    def close(self) -> None:
        """Ends a trace cut short by the run stopping inside the window."""
        if self.active:
            jax.profiler.stop_trace()
            self.active = False
