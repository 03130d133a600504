"""Datasets as in-memory tensors: MNIST, Fashion-MNIST, SVHN, CIFAR-10 and CIFAR-100.

Every dataset is read through torchvision's own dataset class (its on-disk format, its parser;
for CIFAR its files and checks, with the pickled batches read by the restricted unpickler of
:mod:`bench.data.safe_pickle`, never by ``pickle.load``) and held as one float tensor of images in
[0, 1], N×C×H×W, with no normalisation baked in:
each model carries its own normalisation layer (:mod:`bench.models`), so every eps in this
project is in pixel units of [0, 1] images.

Splits follow the paper (Section 4, Table 6): the training set is cut 8:2 into ``train`` and
``val`` by a seeded permutation (48,000/12,000 for MNIST; 58,606/14,651 for SVHN;
40,000/10,000 for CIFAR); ``test`` is the dataset's own test set.

Fashion-MNIST is the offline default: with no copy under the data root, it is taken from the
files that the Debian package ``dataset-fashion-mnist`` installs.

**Staging and locking.** Whatever writes under a data root for a dataset (a torchvision download,
the copy from the Debian package, the decoded cache) holds the dataset's lock
(:func:`bench.data.lock.dataset_lock`), so DAG jobs that start together never download or stage
the same dataset at once. Reading data whose decoded cache is current takes no lock. Compute
nodes are often offline: a dataset that is missing and cannot be downloaded for lack of network
raises :class:`DatasetNotFoundError` saying so and how to stage the data beforehand on a machine
with network (``python -m bench data fetch --config <config>``, which calls :func:`stage` for
every dataset of the config).
"""
from __future__ import annotations

import importlib

from bench.data.info import DATASETS, FILES, FOLDERS, SPLITS, DatasetInfo, dataset_info, default_root

__all__ = [
    "DATASETS",
    "FILES",
    "FOLDERS",
    "SPLITS",
    "DatasetInfo",
    "DatasetLockTimeout",
    "DatasetNotFoundError",
    "Split",
    "dataset_available",
    "dataset_info",
    "dataset_lock",
    "default_root",
    "load_split",
    "stage",
    "split_indices",
    "stratified_subset",
]

# The names below import torch or torchvision: loaded on first use, so that what a dataset is
# (bench.data.info, all the config check and the plan ask) imports neither.
_LAZY = {
    "DEBIAN_FASHION_MNIST": "staging", "DatasetNotFoundError": "staging", "dataset_available": "staging",
    "is_synthetic": "staging", "SYNTHETIC_MARKER": "staging",
    "Split": "loading", "load_split": "loading", "stage": "loading", "split_indices": "loading",
    "stratified_subset": "loading", "TRAIN_FRACTION": "info",
    "DatasetLockTimeout": "lock", "dataset_lock": "lock",
}


def __getattr__(name: str):
    if name in _LAZY:
        return getattr(importlib.import_module(f"bench.data.{_LAZY[name]}"), name)
    raise AttributeError(f"module 'bench.data' has no attribute '{name}'")
