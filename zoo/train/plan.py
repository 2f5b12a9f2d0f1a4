"""The memory planner: where every parameter of a config would live on a mesh, and how much.

    python -m zoo.train.plan --config configs/transformer_base.py \\
        --mesh_shape 4,8 --mesh_axes fsdp,tensor --strategy fsdp_tp --num_devices 32

prints every parameter's logical axes, mesh axes and per-device bytes, and the
per-device memory of parameters + optimizer state. Nothing is allocated and no
device is touched: the state is traced abstractly (``jax.eval_shape``) with the
run's own family and optimizer, and placed by ``zoo.sharding``'s rules.
"""

from __future__ import annotations

import argparse
import importlib.util
import math
import os

import jax
import numpy as np

from zoo import registry, sharding
from zoo.train import config as config_lib
from zoo.train import families, optim


def _bytes(shape, dtype, spec, sizes) -> int:
    """Bytes of one device's shard of an array of ``shape`` placed by ``spec``."""
    entries = tuple(spec) + (None,) * (len(shape) - len(spec))
    shard = [n // math.prod(sizes[a] for a in sharding.axes_of(e))
             for n, e in zip(shape, entries, strict=True)]
    return math.prod(shard) * np.dtype(dtype).itemsize


def describe(config, *, num_devices: int, vocab_size: int | None = None) -> str:
    """The parameter table and per-device memory of ``config`` on its mesh (no devices used)."""
    config = config_lib.validate(config)
    m = config.mesh
    sizes = sharding.axis_sizes(tuple(m.shape), tuple(m.axes), num_devices)
    rules = sharding.make_rules(m.strategy, tuple(m.axes), tuple(m.rules))
    family = families.make(config)
    info = {} if vocab_size is None else {"src": vocab_size, "tgt": vocab_size}
    model = family.build_model(info)
    tx, _ = optim.make_optimizer(config.optim)
    abstract = jax.eval_shape(lambda r: family.init_state(model, tx, r), jax.random.PRNGKey(0))
    _, rows = sharding.leaf_specs(abstract, rules, sizes)
    lines = [f"model {config.model.name} ({registry.get(config.model.name).module.__name__}), "
             f"mesh {sizes}, strategy {m.strategy!r}", f"rules: {rules}", "",
             f"{'parameter':60s} {'shape':>18s} {'logical axes':34s} {'mesh axes':24s} "
             f"{'bytes/device':>13s}"]
    totals: dict[str, int] = {}
    for path, shape, names, spec, dtype in rows:
        part = path.split("/")[0]
        per_device = _bytes(shape, dtype, spec, sizes)
        totals[part] = totals.get(part, 0) + per_device
        if part == "params":
            lines.append(f"{path.removeprefix('params/'):60s} {str(shape):>18s} {str(names):34s} "
                         f"{str(tuple(spec)):24s} {per_device:13,d}")
    lines.append("")
    for part, total in totals.items():
        lines.append(f"per device, {part:>20s}: {total / 2**20:10.2f} MiB")
    lines.append(f"per device, {'total state':>20s}: {sum(totals.values()) / 2**20:10.2f} MiB "
                 "(activations not included)")
    return "\n".join(lines)


def load_config(spec: str):
    """``get_config([arg])`` of a config file given as ``path[:arg]``."""
    path, _, arg = spec.partition(":")
    loader = importlib.util.spec_from_file_location("_zoo_config", path)
    if loader is None or not os.path.exists(path):
        raise ValueError(f"--config {spec!r}: no such config file")
    module = importlib.util.module_from_spec(loader)
    loader.loader.exec_module(module)
    return module.get_config(arg) if arg else module.get_config()


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--config", required=True, help="configs/X.py[:arg]")
    parser.add_argument("--mesh_shape", help="comma-separated sizes, -1 for the rest")
    parser.add_argument("--mesh_axes", help="comma-separated axis names")
    parser.add_argument("--strategy", choices=sorted(sharding.STRATEGIES))
    parser.add_argument("--num_devices", type=int, default=None,
                        help="devices to plan for (default: this machine's)")
    parser.add_argument("--vocab_size", type=int, default=None,
                        help="vocabulary size the data would give (default: the preset's)")
    args = parser.parse_args(argv)
    config = load_config(args.config)
    with config.unlocked():
        if args.mesh_shape:
            config.mesh.shape = tuple(int(s) for s in args.mesh_shape.split(","))
        if args.mesh_axes:
            config.mesh.axes = tuple(args.mesh_axes.split(","))
        if args.strategy:
            config.mesh.strategy = args.strategy
    num_devices = args.num_devices or config.mesh.get("num_devices", 0) or jax.device_count()
    print(describe(config, num_devices=num_devices, vocab_size=args.vocab_size))


if __name__ == "__main__":
    main()
