"""Device meshes and logical-axis rules: one model code for any mesh.

Models name the axes of their parameters and key activations with *logical*
names (``batch``, ``embed``, ``heads``, ``mlp`` ...; see ``LOGICAL_AXES``).
Only a rules table maps those names to *mesh* axes, so the same module runs
data-parallel, FSDP, tensor-parallel or both by changing the config:

    mesh.shape = (2, 4); mesh.axes = ("fsdp", "tensor"); mesh.strategy = "fsdp_tp"

Strategies (built-in tables; ``mesh.rules`` entries are put in front of them):

* ``dp``       batch over ``data``; parameters replicated.
* ``fsdp``     batch over ``data`` x ``fsdp``; parameters and optimizer state
               sharded over ``fsdp`` along ``embed`` (or, where a parameter has
               no ``embed`` axis, along its hidden axis). Stored split, each is
               gathered whole where a step uses it: XLA inserts the all-gathers, and
               the token table asks for its own (``zoo.nn.Embed``), since a lookup
               into a table split along ``embed`` would make XLA rebuild the
               looked-up rows in full on every device.
* ``tp``       Megatron-style: ``heads``, ``kv_heads`` and ``mlp`` over ``tensor``
               (column-parallel in-projections, row-parallel out-projections);
               batch over ``data`` when the mesh has it.
* ``fsdp_tp``  both: ``embed`` over ``fsdp``, ``heads``/``mlp`` over ``tensor``.

Rules are tried in order and a mesh axis is used at most once per array
(flax's convention): an activation ``[batch, length, embed]`` under FSDP has
``batch`` on ``(data, fsdp)``, so its ``embed`` stays whole, while a kernel
``[embed, mlp]`` gets ``embed`` on ``fsdp``.

Planning a run without paying for it:

    python -m zoo.train.plan --config configs/transformer_base.py \
        --mesh_shape 4,8 --mesh_axes fsdp,tensor --strategy fsdp_tp --num_devices 32

prints every parameter's logical axes, mesh axes and per-device bytes, and the
per-device memory of parameters + optimizer state (no device is touched).
"""

from __future__ import annotations

import contextlib
import dataclasses
import math
from collections.abc import Iterable, Sequence
from typing import Any

import flax.linen as nn
import jax
import numpy as np
from jax.sharding import AxisType, Mesh, NamedSharding, PartitionSpec

# Every logical axis name a zoo module uses. A rule naming anything else is a typo.
LOGICAL_AXES = ("batch", "length", "embed", "kv_embed", "heads", "kv_heads", "head_dim", "mlp",
                "vocab", "recurrent", "layers")

Rules = tuple[tuple[str, Any], ...]  # ((logical name, mesh axis | (mesh axes) | None), ...)

_BATCH_AXES = ("data", "fsdp")  # mesh axes that split the batch, outermost first

STRATEGIES: dict[str, tuple[tuple[str, ...], Rules]] = {
    # name: (mesh axes the strategy needs, rules; "batch" is filled in from the mesh)
    "dp": (("data",), ()),
    "fsdp": (("fsdp",), (
        ("embed", "fsdp"), ("kv_embed", "fsdp"), ("recurrent", "fsdp"), ("mlp", "fsdp"),
    )),
    "tp": (("tensor",), (
        ("heads", "tensor"), ("kv_heads", "tensor"), ("mlp", "tensor"),
    )),
    "fsdp_tp": (("fsdp", "tensor"), (
        ("heads", "tensor"), ("kv_heads", "tensor"), ("mlp", "tensor"),
        ("embed", "fsdp"), ("kv_embed", "fsdp"), ("recurrent", "fsdp"),
    )),
}


def axis_sizes(shape: Sequence[int], axes: Sequence[str], num_devices: int) -> dict[str, int]:
    """``{axis: size}`` with one ``-1`` resolved to "the rest"; checks the product."""
    shape, axes = tuple(int(s) for s in shape), tuple(axes)
    if len(shape) != len(axes):
        raise ValueError(f"mesh.shape {shape} and mesh.axes {axes} must have the same length")
    if len(set(axes)) != len(axes):
        raise ValueError(f"mesh.axes {axes} repeats an axis name")
    if not axes:
        raise ValueError("mesh.axes is empty; give at least one axis, e.g. ('data',)")
    if shape.count(-1) > 1:
        raise ValueError(f"mesh.shape {shape}: at most one axis may be -1 ('the rest')")
    if any(s == 0 or s < -1 for s in shape):
        raise ValueError(f"mesh.shape {shape}: sizes must be positive, or -1 for the rest")
    known = math.prod(s for s in shape if s != -1)
    if -1 in shape:
        if num_devices % known:
            raise ValueError(f"mesh.shape {shape}: {num_devices} devices do not split into "
                             f"axes of the given sizes (product {known})")
        shape = tuple(num_devices // known if s == -1 else s for s in shape)
    if math.prod(shape) != num_devices:
        raise ValueError(f"mesh.shape {shape} multiplies to {math.prod(shape)} devices, but "
                         f"there are {num_devices}; make the product {num_devices} or use -1")
    return dict(zip(axes, shape, strict=True))


def make_rules(strategy: str, mesh_axes: Sequence[str], extra: Iterable = ()) -> Rules:
    """The rules table of ``strategy`` on a mesh with ``mesh_axes``, ``extra`` rules first."""
    if strategy not in STRATEGIES:
        raise ValueError(f"mesh.strategy is {strategy!r}; allowed: {sorted(STRATEGIES)}")
    needs, table = STRATEGIES[strategy]
    missing = [a for a in needs if a not in mesh_axes]
    if missing:
        raise ValueError(f"mesh.strategy {strategy!r} needs mesh axes {needs}; mesh.axes "
                         f"{tuple(mesh_axes)} lacks {tuple(missing)}")
    batch = tuple(a for a in _BATCH_AXES if a in mesh_axes) or None
    rules = tuple((str(name), _as_axes(axes)) for name, axes in extra)
    rules += (("batch", batch),) + table
    check_rules(rules, mesh_axes)
    return rules


def _as_axes(axes):
    if axes is None or isinstance(axes, str):
        return axes
    axes = tuple(axes)
    return axes[0] if len(axes) == 1 else (axes or None)


def check_rules(rules: Rules, mesh_axes: Sequence[str]) -> None:
    for rule in rules:
        if len(rule) != 2:
            raise ValueError(f"mesh.rules entry {rule!r} must be (logical name, mesh axes)")
        name, axes = rule
        if name not in LOGICAL_AXES:
            raise ValueError(f"mesh.rules entry {rule!r} names the unknown logical axis "
                             f"{name!r}; known: {LOGICAL_AXES}")
        for axis in (axes,) if isinstance(axes, str) else (axes or ()):
            if axis not in mesh_axes:
                raise ValueError(f"mesh.rules entry {rule!r} names the mesh axis {axis!r}, "
                                 f"which is not in mesh.axes {tuple(mesh_axes)}")


def axes_of(entry) -> tuple[str, ...]:
    if entry is None:
        return ()
    return (entry,) if isinstance(entry, str) else tuple(entry)


def mesh_spec(names: Sequence[str | None], rules: Rules) -> PartitionSpec:
    """Logical names of one array -> its mesh PartitionSpec (flax's first-free-rule order)."""
    return nn.logical_to_mesh_axes(tuple(names), rules)


def check_divisible(path: str, shape: Sequence[int], spec: PartitionSpec,
                    sizes: dict[str, int], names=None) -> None:
    entries = tuple(spec) + (None,) * (len(shape) - len(spec))
    for dim, (length, entry) in enumerate(zip(shape, entries, strict=True)):
        parts = math.prod(sizes[a] for a in axes_of(entry))
        if length % parts:
            what = f" ({names[dim]!r})" if names is not None else ""
            raise ValueError(
                f"{path}: dimension {dim}{what} of shape {tuple(shape)} has size {length}, "
                f"not divisible by mesh axes {axes_of(entry)} of total size {parts}; change "
                "the model size, the mesh, or map that logical axis to None in mesh.rules")


def _path(keypath) -> str:
    return jax.tree_util.keystr(tuple(keypath), simple=True, separator="/") or "<root>"


def leaf_specs(abstract_tree, rules: Rules, sizes: dict[str, int]):
    """(unboxed tree of PartitionSpecs, list of (path, shape, names, spec, dtype)); checked."""
    rows = []

    def spec_of(keypath, x):
        box = isinstance(x, nn.LogicallyPartitioned)
        value = x.value if box else x
        if not hasattr(value, "shape"):
            return None
        names = tuple(x.names) if box else (None,) * len(value.shape)
        spec = mesh_spec(names, rules) if box else PartitionSpec()
        path = _path(keypath)
        check_divisible(path, value.shape, spec, sizes, names if box else None)
        rows.append((path, tuple(value.shape), names, spec, value.dtype))
        return spec

    specs = jax.tree_util.tree_map_with_path(
        spec_of, abstract_tree, is_leaf=lambda x: isinstance(x, nn.LogicallyPartitioned))
    return specs, rows


@dataclasses.dataclass(frozen=True)
class Plan:
    """A mesh plus the rules that place a model's state and batches on it."""

    mesh: Mesh
    rules: Rules
    strategy: str

    @property
    def sizes(self) -> dict[str, int]:
        return dict(self.mesh.shape)

    @property
    def batch_axes(self) -> tuple[str, ...]:
        return axes_of(mesh_spec(("batch",), self.rules)[0])

    @property
    def batch_shards(self) -> int:
        return math.prod(self.sizes[a] for a in self.batch_axes)

    @property
    def replicated(self) -> NamedSharding:
        return NamedSharding(self.mesh, PartitionSpec())

    @property
    def batch_sharding(self) -> NamedSharding:
        """Leading (batch) dimension split over the batch axes, the rest whole."""
        return NamedSharding(self.mesh, PartitionSpec(self.batch_axes or None))

    def state_shardings(self, abstract_state):
        """NamedShardings for an abstract (boxed) state, matching ``nn.unbox`` of it."""
        specs, _ = leaf_specs(abstract_state, self.rules, self.sizes)
        return jax.tree.map(lambda s: NamedSharding(self.mesh, s), specs,
                            is_leaf=lambda s: isinstance(s, PartitionSpec))

    def check_batch_size(self, batch_size: int, what: str = "data.batch_size") -> None:
        parts = self.batch_shards * jax.process_count()
        if batch_size % parts:
            raise ValueError(
                f"{what} = {batch_size} must be divisible by {parts} (batch axes "
                f"{self.batch_axes} of the mesh x {jax.process_count()} processes)")

    def global_batch(self, local_batch: dict) -> dict:
        """This process's rows of a batch -> global arrays split over the batch axes."""
        return {k: jax.make_array_from_process_local_data(self.batch_sharding, np.asarray(v))
                for k, v in local_batch.items()}

    @contextlib.contextmanager
    def activate(self):
        """Mesh + rules in scope: logical activation constraints become real constraints."""
        with jax.set_mesh(self.mesh), nn.logical_axis_rules(self.rules):
            yield


def make_plan(shape: Sequence[int] = (-1,), axes: Sequence[str] = ("data",),
              strategy: str = "dp", rules: Iterable = (), devices=None) -> Plan:
    """The mesh (auto axis types) over ``devices`` (default all) and its rules."""
    devices = list(jax.devices() if devices is None else devices)
    sizes = axis_sizes(shape, axes, len(devices))
    table = make_rules(strategy, tuple(axes), rules)
    used = {a for _, entry in table for a in axes_of(entry)}
    idle = [a for a, n in sizes.items() if n > 1 and a not in used]
    if idle:
        raise ValueError(f"mesh axes {idle} (sizes {[sizes[a] for a in idle]}) are used by no "
                         f"rule of mesh.strategy {strategy!r}; give them size 1 or add rules")
    mesh = jax.make_mesh(tuple(sizes.values()), tuple(sizes), devices=devices,
                         axis_types=(AxisType.Auto,) * len(sizes))
    return Plan(mesh, table, strategy)


def mesh_devices(num_devices: int = 0) -> list:
    """The devices a mesh spans: every device for 0, else the first ``num_devices`` of this
    (single) process."""
    devices = jax.devices()
    if num_devices == 0:
        return devices
    if not 0 < num_devices <= len(devices):
        raise ValueError(f"mesh.num_devices is {num_devices}; allowed: 0 (every device) or "
                         f"1..{len(devices)} (this process has {len(devices)})")
    if jax.process_count() > 1:
        raise ValueError(f"mesh.num_devices is {num_devices}, but a run of "
                         f"{jax.process_count()} processes spans every device: leave it 0")
    return devices[:num_devices]


def plan_from_config(config) -> Plan:
    m = config.mesh
    return make_plan(tuple(m.shape), tuple(m.axes), m.strategy, tuple(m.rules),
                     devices=mesh_devices(m.num_devices))


if __name__ == "__main__":  # the planner used to live here
    raise SystemExit("the sharding planner moved: python -m zoo.train.plan --config ... "
                     "(same flags as before)")
