"""Multi-process setup: joining a ``jax.distributed`` run, and one process writing first.

One process needs nothing from here. Several processes (hosts, or processes on
one machine for testing) each run ``train.py`` with the same flags but their
own ``--process_id``; ``initialize_distributed`` joins them through JAX's own
runtime (gloo on CPU, NCCL / ICI on accelerators) before any device is touched.

This module imports only jax: the data layer uses ``process_zero_first`` and
must not pull in meshes or training code.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Callable
from typing import Any

import jax
from jax.experimental import multihost_utils
from jax.experimental.compilation_cache import compilation_cache

ENV = {"coordinator_address": "JAX_COORDINATOR_ADDRESS", "num_processes": "JAX_NUM_PROCESSES",
       "process_id": "JAX_PROCESS_ID"}


def initialize_distributed(coordinator_address: str = "", num_processes: int = 0,
                           process_id: int = -1, *, heartbeat_timeout_seconds: int = 100,
                           initialization_timeout: int = 300) -> bool:
    """``jax.distributed.initialize`` from arguments, else the JAX_* environment variables.

    Does nothing (returns False) when neither names a coordinator: one process.
    Must run before anything touches a JAX device.
    """
    address = coordinator_address or os.environ.get(ENV["coordinator_address"], "")
    if not address:
        return False
    count = num_processes or int(os.environ.get(ENV["num_processes"], "0") or 0)
    pid = process_id if process_id >= 0 else int(os.environ.get(ENV["process_id"], "-1") or -1)
    if count < 1 or not 0 <= pid < count:
        raise ValueError(f"multi-process run with coordinator {address!r} needs num_processes "
                         f">= 1 and 0 <= process_id < num_processes; got {count} and {pid} "
                         f"(flags or {ENV['num_processes']} / {ENV['process_id']})")
    jax.distributed.initialize(address, num_processes=count, process_id=pid,
                               heartbeat_timeout_seconds=heartbeat_timeout_seconds,
                               initialization_timeout=initialization_timeout)
    _no_persistent_cache_on_cpu()
    return True


def _no_persistent_cache_on_cpu() -> None:
    """Turn XLA's persistent compilation cache off for a multi-process CPU run.

    With jax 0.10.2, processes that load a multi-process step from the cache
    (written by an earlier run) hang, idle, at its first gloo collective; the
    same run compiling afresh trains. Found when the two-process tests shared
    the suite's cache (tests/train/test_multiprocess.py). Accelerators keep it.
    """
    if not jax.config.jax_compilation_cache_dir or jax.default_backend() != "cpu":
        return
    logging.warning("multi-process CPU run: XLA's persistent compilation cache (%s) is off; "
                    "steps loaded from it hang at their first collective with jax %s",
                    jax.config.jax_compilation_cache_dir, jax.__version__)
    jax.config.update("jax_enable_compilation_cache", False)
    compilation_cache.reset_cache()


def process_zero_first(what: str, make: Callable[[], Any]) -> Any:
    """``make()`` on process 0, then on the others: one process writes shared files first.

    Preparing a dataset or training a tokenizer writes files; with several
    processes on one file system, process 0 writes them while the others wait
    at a barrier, then the others call ``make`` too (on a shared file system it
    finds the files; on per-host disks it writes its own copy).
    """
    if jax.process_count() == 1:
        return make()
    if jax.process_index() == 0:
        result = make()
        multihost_utils.sync_global_devices(f"zoo: {what}")
        return result
    multihost_utils.sync_global_devices(f"zoo: {what}")
    return make()
