"""Orbax checkpoints: named items (train state, data-iterator state, config).

* The train state is saved by every process together (global, possibly
  sharded arrays); each process writes its own data-iterator position
  (``data/process_<i>-of-<n>.json``, grain's checkpoint handler); the config
  is written once.

* Saves are asynchronous; the last ``max_to_keep`` steps are kept, plus the
  best step by ``best_metric`` when one is given.
* Restoring walks back from the newest step: a step that fails to restore (a
  stray empty folder, a truncated write) is moved aside to
  ``<directory>.corrupt/`` with a warning -- never deleted -- and the next
  older step is tried.
* The target of a restore is an abstract state (``jax.ShapeDtypeStruct`` with
  shardings), so a checkpoint restores onto whatever mesh the new run uses.
"""

from __future__ import annotations

import json
import logging
import os
import shutil
import time
from typing import Any, NamedTuple

import grain
import jax
import orbax.checkpoint as ocp
from orbax.checkpoint import checkpoint_managers as policies

log = logging.getLogger(__name__)


class Restored(NamedTuple):
    step: int
    state: Any
    data: dict | None  # this process's data-iterator state; None if saved by another layout
    config: dict | None


class _IteratorState:
    """What grain's handler saves/restores: an iterator state as JSON bytes.

    Saving a snapshot (not the live iterator) keeps an asynchronous save from
    recording a position the loop has already moved past.
    """

    def __init__(self, state: dict | None = None):
        self.state = state

    def get_state(self) -> bytes:
        return json.dumps(self.state).encode()

    def set_state(self, raw: bytes) -> None:
        self.state = json.loads(raw)

    def start_prefetch(self) -> None:
        pass


def abstract_like(tree):
    """ShapeDtypeStructs (with shardings) describing ``tree``: a restore target."""
    def to_struct(x):
        if isinstance(x, jax.Array):
            return jax.ShapeDtypeStruct(x.shape, x.dtype, sharding=x.sharding)
        return x

    return jax.tree.map(to_struct, tree)


class Checkpointer:
    """A thin policy layer over ``ocp.CheckpointManager``."""

    def __init__(self, directory: str, *, max_to_keep: int = 3, best_metric: str | None = None,
                 best_mode: str = "max", async_save: bool = True):
        if max_to_keep < 1:
            raise ValueError(f"checkpoint max_to_keep must be >= 1, got {max_to_keep}")
        if best_mode not in ("max", "min"):
            raise ValueError(f"best_mode must be 'max' or 'min', got {best_mode!r}")
        self.directory = os.path.abspath(directory)
        keep = [policies.LatestN(n=max_to_keep)]
        if best_metric:
            keep.append(policies.BestN(
                get_metric_fn=lambda metrics: metrics[best_metric], reverse=best_mode == "min",
                n=1, keep_checkpoints_without_metrics=True,
            ))
        options = ocp.CheckpointManagerOptions(
            preservation_policy=policies.AnyPreservationPolicy(keep),
            enable_async_checkpointing=async_save,
            cleanup_tmp_directories=True,
        )
        self._manager = ocp.CheckpointManager(self.directory, options=options)

    def steps(self) -> list[int]:
        return sorted(self._manager.all_steps())

    def latest_step(self) -> int | None:
        steps = self.steps()
        return steps[-1] if steps else None

    def save(self, step: int, state, *, data: dict | None = None, config: dict | None = None,
             metrics: dict | None = None) -> None:
        items = {"state": ocp.args.StandardSave(state)}
        if data is not None:
            items["data"] = grain.checkpoint.CheckpointSave(_IteratorState(data))
        if config is not None:
            items["config"] = ocp.args.JsonSave(config)
        self._manager.save(step, args=ocp.args.Composite(**items), metrics=metrics, force=True)

    def restore_latest(self, target_state) -> Restored | None:
        """The newest step that restores onto ``target_state``'s structure, or None."""
        self.wait()
        target = abstract_like(target_state)
        for step in reversed(self.steps()):
            try:
                return self._restore(step, target)
            except Exception as err:  # noqa: BLE001 -- any failure means "unusable step"
                log.warning("checkpoint step %d in %s does not restore (%s: %s); moving it "
                            "aside and trying the previous one", step, self.directory,
                            type(err).__name__, str(err).splitlines()[0][:200])
                self._move_aside(step)
        return None

    def _restore(self, step: int, target) -> Restored:
        folder = os.path.join(self.directory, str(step))
        names = set(os.listdir(folder)) if os.path.isdir(folder) else set()
        items = {"state": ocp.args.StandardRestore(target)}
        if "config" in names:
            items["config"] = ocp.args.JsonRestore()
        out = self._manager.restore(step, args=ocp.args.Composite(**items))
        return Restored(step, out["state"], self._restore_data(step, names), out.get("config"))

    def _restore_data(self, step: int, names) -> dict | None:
        """This process's iterator state, or None when the step was saved by another
        process layout (e.g. two hosts, restored on one): the data then restarts."""
        if "data" not in names:
            return None
        expected = f"process_{jax.process_index()}-of-{jax.process_count()}.json"
        if not os.path.exists(os.path.join(self.directory, str(step), "data", expected)):
            log.warning("checkpoint step %d was written by another process layout; the data "
                        "iterator starts afresh", step)
            return None
        item = _IteratorState()
        self._manager.restore(step, args=ocp.args.Composite(
            data=grain.checkpoint.CheckpointRestore(item)))
        return item.state

    def _move_aside(self, step: int) -> None:
        src = os.path.join(self.directory, str(step))
        if os.path.exists(src) and jax.process_index() == 0:  # one process moves, all reload
            dst_dir = self.directory.rstrip("/") + ".corrupt"
            os.makedirs(dst_dir, exist_ok=True)
            shutil.move(src, os.path.join(dst_dir, f"{step}-{int(time.time())}"))
        self._manager.reload()

    def wait(self) -> None:
        self._manager.wait_until_finished()

    def close(self) -> None:
        self._manager.close()
