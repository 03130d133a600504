"""What each dataset is (name, shape, classes, normalisation, where its files lie under a
data root), without torch: the Snakefile's parse reads it."""
from __future__ import annotations

import logging
import os
from dataclasses import dataclass
from pathlib import Path

from bench.registry import Registry

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class DatasetInfo:
    """What a model needs to know about a dataset: shape, classes, normalisation statistics."""

    name: str
    title: str
    channels: int
    image_size: int
    num_classes: int
    mean: tuple[float, ...]
    std: tuple[float, ...]
    fetch_hint: str

    @property
    def shape(self) -> tuple[int, int, int]:
        return (self.channels, self.image_size, self.image_size)


def _fetch(name: str) -> str:
    return f"python -m bench data fetch {name} --root <data root>   (on a machine with network)"


DATASETS: Registry[DatasetInfo] = Registry("dataset")


for _info in (
    DatasetInfo("mnist", "MNIST", 1, 28, 10, (0.1307,), (0.3081,), _fetch("mnist")),
    DatasetInfo(
        "fashion_mnist", "Fashion-MNIST", 1, 28, 10, (0.2860,), (0.3530,),
        "apt-get install dataset-fashion-mnist   (or: " + _fetch("fashion_mnist") + ")",
    ),
    DatasetInfo(
        "svhn", "SVHN", 3, 32, 10, (0.4377, 0.4438, 0.4728), (0.1980, 0.2010, 0.1970),
        _fetch("svhn"),
    ),
    DatasetInfo(
        "cifar10", "CIFAR-10", 3, 32, 10, (0.4914, 0.4822, 0.4465), (0.2470, 0.2435, 0.2616),
        _fetch("cifar10"),
    ),
    DatasetInfo(
        "cifar100", "CIFAR-100", 3, 32, 100, (0.5071, 0.4865, 0.4409),
        (0.2673, 0.2564, 0.2762), _fetch("cifar100"),
    ),
):
    DATASETS.add(_info.name, _info)


def dataset_info(name: str) -> DatasetInfo:
    """The :class:`DatasetInfo` of ``name``; an unknown name lists the known ones."""
    return DATASETS[name]


def default_root() -> Path:
    """The data root: ``$BENCH_DATA`` if set, else ``./data``."""
    return Path(os.environ.get("BENCH_DATA", "data"))


SPLITS = ("train", "val", "test")


TRAIN_FRACTION = 0.8


#: the folder under the data root that holds each dataset's files (torchvision's layout)
FOLDERS = {"mnist": "MNIST", "fashion_mnist": "FashionMNIST", "svhn": "svhn",
           "cifar10": "cifar-10-batches-py", "cifar100": "cifar-100-python"}


_IDX = [f"raw/{p}-{k}-idx{d}-ubyte" for p in ("train", "t10k") for k, d in (("images", 3), ("labels", 1))]


#: the files torchvision's reader opens for both splits, relative to the dataset's folder
FILES = {"mnist": _IDX, "fashion_mnist": _IDX, "svhn": ["train_32x32.mat", "test_32x32.mat"],
         "cifar10": [*(f"data_batch_{i}" for i in range(1, 6)), "test_batch", "batches.meta"],
         "cifar100": ["train", "test", "meta"]}
