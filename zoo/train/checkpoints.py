"""Orbax checkpoints: named items (train state, data-iterator state, config).

* The train state is saved by every process together (global, possibly
  sharded arrays); each process writes its own data-iterator position
  (``data/process_<i>-of-<n>.json``, grain's checkpoint handler); the config
  is written once.
* Saves are asynchronous; the last ``max_to_keep`` steps are kept, plus the
  best step by ``best_metric`` when one is given.
* The target of a restore is an abstract state (``jax.ShapeDtypeStruct`` with
  shardings), so a checkpoint restores onto whatever mesh the new run uses.

Restoring walks back from the newest step. Before reading any array, the
saved tree of the 'state' item (its metadata: parameter paths, shapes, dtypes)
is compared with the target:

* A structure mismatch (the model config or the optimizer changed) is not
  corruption: ``CheckpointMismatchError`` names the first differing path and
  nothing on disk is touched.
* An unreadable step (no metadata, e.g. a stray empty folder; or matching
  metadata but truncated/garbage array files) is passed over for the next
  older step. In the run's own folder (``Checkpointer.restore_latest``) it is
  moved aside to ``<directory>.corrupt/<step>-<time>`` -- never deleted.
  ``read_latest`` reads another run's folder strictly read-only: it only skips.
"""

from __future__ import annotations

import contextlib
import json
import logging
import os
import shutil
import time
from collections.abc import Callable
from typing import Any, NamedTuple

import grain
import jax
import numpy as np
import orbax.checkpoint as ocp
from orbax.checkpoint import checkpoint_managers as policies

log = logging.getLogger(__name__)


class _QuietAboutStepsWithoutMetrics(logging.Filter):
    """Checkpoints between evaluations have no metrics, by design; Orbax warns at every one."""

    def filter(self, record: logging.LogRecord) -> bool:
        return "did not provide metrics" not in record.getMessage()


logging.getLogger("absl").addFilter(_QuietAboutStepsWithoutMetrics())


class Restored(NamedTuple):
    step: int
    state: Any
    data: dict | None  # this process's data-iterator state; None if saved by another layout
    config: dict | None


class CheckpointMismatchError(ValueError):
    """A checkpoint whose saved tree (paths, shapes, dtypes) does not fit the target.

    Not corruption: the model config or the optimizer changed. Raised before
    anything on disk is touched.
    """

    def __init__(self, message: str, *, directory: str, step: int, path: str):
        super().__init__(message)
        self.directory = directory
        self.step = step
        self.path = path  # the first differing path, e.g. 'params/dense/kernel'


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


def _handler_registry() -> ocp.handlers.DefaultCheckpointHandlerRegistry:
    """The handler of every item, so ``item_metadata`` can read a step before any restore."""
    registry = ocp.handlers.DefaultCheckpointHandlerRegistry()
    for item, args in [
        ("state", (ocp.args.StandardSave, ocp.args.StandardRestore)),
        ("data", (grain.checkpoint.CheckpointSave, grain.checkpoint.CheckpointRestore)),
        ("config", (ocp.args.JsonSave, ocp.args.JsonRestore)),
    ]:
        for arg in args:
            registry.add(item, arg)
    return registry


class Checkpointer:
    """A thin policy layer over ``ocp.CheckpointManager`` for a run's own folder."""

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
            # best_fn also makes Orbax write each step's metrics to disk, so the best step is
            # still known after a restart and to readers (read_latest(best_metric=...)).
            best_fn=(lambda metrics: metrics[best_metric]) if best_metric else None,
            best_mode=best_mode,
            enable_async_checkpointing=async_save,
            cleanup_tmp_directories=True,
        )
        self._manager = ocp.CheckpointManager(self.directory, options=options,
                                              handler_registry=_handler_registry())

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
        """The newest step of this run's folder that restores onto ``target_state``, or None.

        Raises:
          CheckpointMismatchError: the newest readable step was written for another
            model/optimizer structure; nothing is moved.
        """
        self.wait()
        return _walk_back(self._manager, self.directory, target_state,
                          move_aside=self._move_aside)

    def _move_aside(self, step: int) -> str:
        src = os.path.join(self.directory, str(step))
        dst = os.path.join(self.directory.rstrip("/") + ".corrupt", f"{step}-{int(time.time())}")
        if os.path.exists(src) and jax.process_index() == 0:  # one process moves, all reload
            os.makedirs(os.path.dirname(dst), exist_ok=True)
            shutil.move(src, dst)
        self._manager.reload()
        return dst

    def wait(self) -> None:
        self._manager.wait_until_finished()

    def close(self) -> None:
        self._manager.close()


def read_latest(directory: str, target_state, *, best_metric: str | None = None,
                best_mode: str = "max") -> Restored | None:
    """The newest step of another run's checkpoint folder that restores onto ``target_state``;
    with ``best_metric``, the step whose saved evaluation was best by that metric.

    Strictly read-only: no folder is created, no tmp folder cleaned up, no step
    moved; an unreadable step is skipped with a warning. With ``best_metric``,
    steps are tried best first, then (for steps saved without that metric) newest
    first; ``best_mode`` is 'max' or 'min'.

    Returns:
      The restored step, or None when no step restores -- also when ``directory``
      is empty or does not exist (the caller says what that means for it).

    Raises:
      CheckpointMismatchError: the newest readable step was written for another
        model/optimizer structure.
    """
    directory = os.path.abspath(directory)
    with _read_only_manager(directory) as manager:
        if manager is None:
            return None
        order = None if best_metric is None else _best_first(manager, best_metric, best_mode)
        return _walk_back(manager, directory, target_state, move_aside=None, order=order)


class Averaged(NamedTuple):
    steps: tuple[int, ...]  # the averaged steps, in the order they were chosen
    params: Any  # their parameters' element-wise mean, in the saved dtypes


def read_average(directory: str, target_state, count: int, *, best_metric: str | None = None,
                 best_mode: str = "max") -> Averaged | None:
    """The mean parameters of ``count`` steps of a run's checkpoint folder: checkpoint averaging
    (Vaswani et al. 2017 average the last 5 or 20; OpenNMT and fairseq ship a script for it).

    The steps are the ``count`` newest that restore or, with ``best_metric``, the
    ``count`` best by that saved metric (``read_latest``'s order); unreadable steps
    are skipped, as there. Read-only. The mean is taken in float32 and cast back to
    each parameter's saved dtype, on ``target_state``'s shardings.

    Returns:
      The steps and the averaged parameters; None when no step restores. Fewer than
      ``count`` steps are averaged when fewer restore (``steps`` says which).

    Raises:
      ValueError: ``count`` < 1, or a ``best_mode`` other than 'max'/'min'.
      CheckpointMismatchError: a step was written for another structure.
    """
    if not isinstance(count, int) or count < 1:
        raise ValueError(f"count (the checkpoints to average) must be an integer >= 1, "
                         f"got {count!r}")
    directory = os.path.abspath(directory)
    with _read_only_manager(directory) as manager:
        if manager is None:
            return None
        order = (sorted(manager.all_steps(), reverse=True) if best_metric is None
                 else _best_first(manager, best_metric, best_mode))
        steps, total = [], None
        while order and len(steps) < count:
            restored = _walk_back(manager, directory, target_state, move_aside=None, order=order)
            if restored is None:
                break
            order = order[order.index(restored.step) + 1:]
            params = jax.tree.map(lambda x: np.asarray(x, np.float32), restored.state.params)
            total = params if total is None else jax.tree.map(np.add, total, params)
            steps.append(restored.step)
            like = restored.state.params  # the dtypes and shardings of the result
    if not steps:
        return None
    mean = jax.tree.map(lambda t, x: jax.device_put((t / len(steps)).astype(x.dtype), x.sharding),
                        total, like)
    return Averaged(tuple(steps), mean)


@contextlib.contextmanager
def _read_only_manager(directory: str):
    """A manager that only reads ``directory`` (None if it does not exist), closed after."""
    if not os.path.isdir(directory):
        yield None
        return
    options = ocp.CheckpointManagerOptions(read_only=True, create=False, save_interval_steps=0)
    manager = ocp.CheckpointManager(directory, options=options,
                                    handler_registry=_handler_registry())
    try:
        yield manager
    finally:
        manager.close()


def _best_first(manager: ocp.CheckpointManager, metric: str, mode: str) -> list[int]:
    """The folder's steps, best saved ``metric`` first; steps without it last, newest first."""
    if mode not in ("max", "min"):
        raise ValueError(f"best_mode must be 'max' or 'min', got {mode!r}")
    scored, unscored = [], []
    for step in manager.all_steps():
        try:
            value = (manager.metrics(step) or {}).get(metric)
        except Exception:  # noqa: BLE001 -- unreadable metrics: the walk decides about the step
            value = None
        if isinstance(value, int | float) and np.isfinite(value):
            scored.append((-value if mode == "max" else value, -step, step))
        else:
            unscored.append(step)
    return [step for *_, step in sorted(scored)] + sorted(unscored, reverse=True)


def _walk_back(manager: ocp.CheckpointManager, directory: str, target_state, *,
               move_aside: Callable[[int], str] | None,
               order: list[int] | None = None) -> Restored | None:
    """Newest step first (or in ``order``): a mismatch raises, an unreadable step is passed over.

    ``move_aside(step) -> where`` moves an unreadable step out of the run's own folder;
    None reads ``directory`` read-only and leaves the step where it is.
    """
    target = abstract_like(target_state)
    advice = ("Use a new --workdir, or run with the config that wrote it" if move_aside
              else "Run with the config that wrote it")
    for step in sorted(manager.all_steps(), reverse=True) if order is None else order:
        try:
            saved = _saved_state_tree(manager, step)
        except Exception as err:  # noqa: BLE001 -- no readable metadata: unreadable step
            problem = err
        else:
            _check_fits(saved, target, directory, step, advice)  # never "unreadable"
            try:
                return _restore(manager, directory, step, target)
            except Exception as err:  # noqa: BLE001 -- the structure fits, so the files are bad
                problem = err
        action = f"moved it aside to {move_aside(step)}" if move_aside else "skipped it"
        log.warning("checkpoint step %d in %s is unreadable (%s: %s); %s; trying the previous "
                    "one", step, directory, type(problem).__name__,
                    (str(problem).splitlines() or [""])[0][:200], action)
    return None


def _saved_state_tree(manager: ocp.CheckpointManager, step: int):
    """The saved 'state' item's tree of array metadata (shape, dtype per leaf)."""
    metadata = manager.item_metadata(step)
    saved = metadata.get("state") if metadata is not None else None
    if saved is None:
        raise FileNotFoundError(f"step {step} has no readable 'state' metadata")
    return getattr(saved, "tree", saved)


def _flat(tree) -> dict[str, Any]:
    """``{'params/dense/kernel': leaf}``: a TrainState (attribute keys) and its saved dict form
    (dict keys; tuples saved as lists, namedtuples as dicts) give the same strings."""
    leaves = jax.tree_util.tree_flatten_with_path(tree)[0]
    return {jax.tree_util.keystr(path, simple=True, separator="/"): leaf for path, leaf in leaves}


def _describe(leaf) -> tuple[tuple[int, ...] | None, str | None]:
    shape = getattr(leaf, "shape", None)
    dtype = getattr(leaf, "dtype", None)
    return (None if shape is None else tuple(shape),
            None if dtype is None else np.dtype(dtype).name)


def _check_fits(saved, target, directory: str, step: int, advice: str) -> None:
    """Raises CheckpointMismatchError unless ``saved`` has ``target``'s paths, shapes, dtypes."""
    saved, target = _flat(saved), _flat(target)
    differences = []  # (path, sentence, kind); target order first, so params come first
    for path, leaf in target.items():
        if path not in saved:
            differences.append((path, f"{path} is in this config but not in the checkpoint",
                                "config only"))
            continue
        (s_shape, s_dtype), (t_shape, t_dtype) = _describe(saved[path]), _describe(leaf)
        shape_differs = None not in (s_shape, t_shape) and s_shape != t_shape
        dtype_differs = None not in (s_dtype, t_dtype) and s_dtype != t_dtype
        if shape_differs or dtype_differs:
            differences.append((path, f"{path} has shape {s_shape} {s_dtype} in the checkpoint "
                                f"but {t_shape} {t_dtype} in this config", "shape"))
    # The saved tree is a dict (keys sorted: opt_state before params); list its extra paths
    # in the target's field order too, so the params are named first.
    fields = list(dict.fromkeys(path.split("/")[0] for path in target))
    extra = sorted((path for path in saved if path not in target), key=lambda path: (
        fields.index(path.split("/")[0]) if path.split("/")[0] in fields else len(fields)))
    differences += [(path, f"{path} is in the checkpoint but not in this config",
                     "checkpoint only") for path in extra]
    if not differences:
        return
    shown = [differences[0]]
    for kind in ("config only", "checkpoint only"):  # a renamed param: name both sides
        first = next((d for d in differences if d[2] == kind), None)
        if first is not None and first not in shown:
            shown.append(first)
    more = (f" ({len(differences)} paths differ in all)"
            if len(differences) > len(shown) else "")
    raise CheckpointMismatchError(
        f"checkpoint step {step} in {directory} does not fit this run's model/optimizer: "
        + "; ".join(sentence for _, sentence, _ in shown) + more
        + f"; nothing was moved. {advice}",
        directory=directory, step=step, path=differences[0][0])


def _restore(manager: ocp.CheckpointManager, directory: str, step: int, target) -> Restored:
    folder = os.path.join(directory, str(step))
    names = set(os.listdir(folder)) if os.path.isdir(folder) else set()
    items = {"state": ocp.args.StandardRestore(target)}
    if "config" in names:
        items["config"] = ocp.args.JsonRestore()
    data = _IteratorState() if _has_own_data(folder, names) else None
    if data is not None:
        items["data"] = grain.checkpoint.CheckpointRestore(data)
    out = manager.restore(step, args=ocp.args.Composite(**items))
    return Restored(step, out["state"], None if data is None else data.state, out.get("config"))


def _has_own_data(folder: str, names) -> bool:
    """Whether the step holds this process's iterator state. Not when it was saved by another
    process layout (e.g. two hosts, restored on one): the data then restarts."""
    if "data" not in names:
        return False
    expected = f"process_{jax.process_index()}-of-{jax.process_count()}.json"
    if not os.path.exists(os.path.join(folder, "data", expected)):
        log.warning("checkpoint %s was written by another process layout; the data iterator "
                    "starts afresh", folder)
        return False
    return True
