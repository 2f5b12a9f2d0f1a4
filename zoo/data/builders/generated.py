"""TFDS builder for the generated seq2seq tasks: `generated_tasks/<task>`.

One config per task of `zoo.data.tasks` (dates, reverse, copy, sort,
addition) with a seed, split sizes and a length range. Preparing draws
`train + validation + test` pairs with distinct sources from
`generate(task, n, seed=...)` and deals them out test first, then validation,
then train, so the same config always gives the same examples and no source
appears in two splits.

    builder = GeneratedTasks(config="dates", data_dir=...)
    builder = GeneratedTasks(config=task_config("addition", length_range=(1, 6)), ...)
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
from typing import Any

import tensorflow_datasets as tfds

from zoo.data import tasks
from zoo.data.builders.base import LocalBuilder

SPLITS = ("train", "validation", "test")


@dataclasses.dataclass(eq=False, kw_only=True)
class TaskConfig(tfds.core.BuilderConfig):
    """One generated task with its seed, split sizes and generator options."""

    task: str = "dates"
    seed: int = 0
    train_size: int = 50_000
    validation_size: int = 1_000
    test_size: int = 1_000
    length_range: tuple[int, int] | None = None  # None: the task's own default
    options: tuple[tuple[str, Any], ...] = ()  # extra keyword arguments of the task function

    def generator_kwargs(self) -> dict[str, Any]:
        kwargs = dict(self.options)
        if self.length_range is not None:
            kwargs["length_range"] = tuple(self.length_range)
        return kwargs

    def sizes(self) -> dict[str, int]:
        return {"train": self.train_size, "validation": self.validation_size,
                "test": self.test_size}


def _default_config(task: str) -> TaskConfig:
    return TaskConfig(name=task, task=task, description=f"Generated task '{task}', seed 0.")


DEFAULT_CONFIGS = tuple(_default_config(task) for task in tasks.TASKS)


def task_config(
    task: str,
    *,
    seed: int = 0,
    train_size: int = 50_000,
    validation_size: int = 1_000,
    test_size: int = 1_000,
    length_range: tuple[int, int] | None = None,
    **options: Any,
) -> TaskConfig:
    """A config for `task`; non-default settings get their own name (so their own directory).

    The name is `task` for the defaults and `task-<hash of the settings>`
    otherwise, so data prepared with other settings is never reused by mistake.
    """
    if task not in tasks.TASKS:
        raise ValueError(f"task must be one of {sorted(tasks.TASKS)}, got {task!r}")
    for key, value in (("train_size", train_size), ("validation_size", validation_size),
                       ("test_size", test_size)):
        if isinstance(value, bool) or not isinstance(value, int) or value < 0:
            raise ValueError(f"{key} must be a non-negative int, got {value!r}")
    settings = dict(seed=seed, train_size=train_size, validation_size=validation_size,
                    test_size=test_size, length_range=length_range,
                    options=tuple(sorted(options.items())))
    defaults = {f: getattr(_default_config(task), f) for f in settings}
    if settings == defaults:
        return _default_config(task)
    digest = hashlib.sha256(json.dumps(settings, sort_keys=True, default=str).encode())
    return TaskConfig(
        name=f"{task}-{digest.hexdigest()[:10]}",
        task=task,
        description=f"Generated task '{task}' with {settings}.",
        **settings,
    )


def split_pairs(config: TaskConfig) -> dict[str, list[tuple[str, str]]]:
    """The pairs of each split of `config`: distinct sources, dealt test, validation, train."""
    sizes = config.sizes()
    need = sum(sizes.values())
    n = need
    for _ in range(8):  # draw more when duplicates leave too few distinct sources
        pairs = tasks.generate(config.task, n, seed=config.seed, **config.generator_kwargs())
        first: dict[str, str] = {}
        for source, target in pairs:
            first.setdefault(source, target)
        distinct = list(first.items())
        if len(distinct) >= need:
            break
        n *= 2
    else:
        raise ValueError(
            f"task {config.task!r} with {config.generator_kwargs()} gave only {len(distinct)} "
            f"distinct sources in {n} draws; train_size + validation_size + test_size = {need} "
            "needs a wider length_range or smaller splits"
        )
    out, start = {}, 0
    for split in ("test", "validation", "train"):
        out[split] = distinct[start : start + sizes[split]]
        start += sizes[split]
    return out


class GeneratedTasks(LocalBuilder):
    """Generated (source, target) string pairs; always available, deterministic by seed."""

    VERSION = tfds.core.Version("1.0.0")
    RELEASE_NOTES = {"1.0.0": "Dates, reverse, copy, sort and addition with disjoint splits."}
    BUILDER_CONFIGS = list(DEFAULT_CONFIGS)
    DEFAULT_CONFIG_NAME = "dates"

    def _info(self) -> tfds.core.DatasetInfo:
        return tfds.core.DatasetInfo(
            builder=self,
            description=self.__doc__,
            features=tfds.features.FeaturesDict(
                {"source": tfds.features.Text(), "target": tfds.features.Text()}
            ),
            supervised_keys=("source", "target"),
        )

    def _split_generators(self, dl_manager):
        del dl_manager  # nothing to download
        pairs = split_pairs(self.builder_config)
        return {split: self._generate_examples(pairs[split]) for split in SPLITS}

    def _generate_examples(self, pairs):
        for i, (source, target) in enumerate(pairs):
            yield i, {"source": source, "target": target}
