"""TFDS builders (array_record, no TensorFlow) for zoo's datasets; importing registers them.

    generated_tasks/{dates,reverse,copy,sort,addition}   always available
    de_en/{sentences,phrases}                             Debian trans-de-en
    en_es_bible                                           Debian sword-text-kjv + sword-text-sparv
    wordnet_glosses                                       Debian wordnet-base
    fashion_mnist                                         Debian dataset-fashion-mnist
"""

from zoo.data.builders.base import FILE_FORMAT, LocalBuilder, download_config, prepare
from zoo.data.builders.fashion_mnist import FashionMnist
from zoo.data.builders.generated import GeneratedTasks, TaskConfig, split_pairs, task_config
from zoo.data.builders.text import DeEn, DeEnConfig, EnEsBible, WordnetGlosses

# TFDS name -> builder class, for the datasets that zoo can prepare itself.
BUILDERS = {
    builder.name: builder
    for builder in (GeneratedTasks, DeEn, EnEsBible, WordnetGlosses, FashionMnist)
}

__all__ = [
    "BUILDERS",
    "FILE_FORMAT",
    "DeEn",
    "DeEnConfig",
    "EnEsBible",
    "GeneratedTasks",
    "LocalBuilder",
    "TaskConfig",
    "WordnetGlosses",
    "download_config",
    "prepare",
    "split_pairs",
    "task_config",
]
