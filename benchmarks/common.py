"""What every benchmark script shares: the environment stamp, timing, and result files.

Kept out of the scripts so that the three of them time and stamp the same way:
median of timed calls after warm-up, each call blocked until its result exists.
"""

from __future__ import annotations

import datetime
import json
import os
import platform
import statistics
import time
from collections.abc import Callable

import flax
import jax
import optax

try:  # the optional peer (pip install -e '.[bench]')
    import torch
except ImportError:  # pragma: no cover - depends on the environment
    torch = None

RESULTS = os.path.join(os.path.dirname(os.path.abspath(__file__)), "results")
TORCH_HINT = "torch is not installed: skipping the torch peers (pip install -e '.[bench]')"


def cpu_model() -> str:
    """The host CPU's model name (machines of one kind differ in it), or the architecture."""
    try:
        with open("/proc/cpuinfo") as f:
            names = [line.split(":", 1)[1].strip() for line in f if line.startswith("model name")]
    except OSError:
        names = []
    return names[0] if names else platform.machine()


def environment() -> dict:
    """Device, versions and date: the stamp on every result file."""
    return {
        "date": datetime.datetime.now(datetime.UTC).isoformat(timespec="seconds"),
        "device": str(jax.devices()[0].device_kind), "platform": jax.default_backend(),
        "cpu": cpu_model(),
        "cpu_count": os.cpu_count(), "machine": platform.machine(),
        "python": platform.python_version(), "jax": jax.__version__,
        "flax": flax.__version__, "optax": optax.__version__,
        "torch": getattr(torch, "__version__", None),
        "torch_threads": torch.get_num_threads() if torch is not None else None,
        "load_average": list(os.getloadavg()),
    }


def stamp_line(meta: dict) -> str:
    return (f"Device: {meta['device']} ({meta['platform']}, {meta['cpu_count']} cores, "
            f"{meta['machine']}), jax {meta['jax']}, flax {meta['flax']}, "
            f"torch {meta['torch']}, {meta['date']}; load average at start "
            f"{meta['load_average'][0]:.1f}.")


def time_calls(fn: Callable[[], object], repeats: int, warmup: int = 1) -> list[float]:
    """Seconds per call of ``fn`` (which must block until its work is done)."""
    for _ in range(warmup):
        fn()
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        fn()
        times.append(time.perf_counter() - start)
    return times


def interleaved(fns: dict[str, Callable[[], object]], rounds: int, repeats: int,
                warmup: int = 2) -> dict[str, list[float]]:
    """Times several contenders in alternating rounds, so a burst of load from other
    processes hits all of them alike and their ratio survives it."""
    for fn in fns.values():
        for _ in range(warmup):
            fn()
    times: dict[str, list[float]] = {name: [] for name in fns}
    for _ in range(rounds):
        for name, fn in fns.items():
            times[name] += time_calls(fn, repeats, warmup=0)
    return times


def spread(times: list[float]) -> dict:
    return {"median_s": statistics.median(times), "min_s": min(times), "max_s": max(times),
            "n": len(times)}


def write(stem: str, meta: dict, payload: dict, markdown: list[str]) -> None:
    """``stem``.json (meta + payload) and ``stem``.md."""
    os.makedirs(os.path.dirname(stem), exist_ok=True)
    with open(stem + ".json", "w") as f:
        json.dump({"meta": meta, **payload}, f, indent=1, default=str)
    with open(stem + ".md", "w") as f:
        f.write("\n".join(markdown) + "\n")


def table(header: list[str], rows: list[list[object]]) -> list[str]:
    """A markdown table."""
    lines = ["| " + " | ".join(header) + " |", "|" + " --- |" * len(header)]
    lines += ["| " + " | ".join(str(c) for c in row) + " |" for row in rows]
    return lines
