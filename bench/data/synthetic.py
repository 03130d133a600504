"""Synthetic data in the real on-disk formats of CIFAR-10/100 and SVHN, for machines that cannot
download them: the GPU check (``config/gpu-check.yaml``) and the tests run the real loaders of
:mod:`bench.data` on these files.

With ``learnable=True`` each class is a fixed random 32×32×3 template plus uniform noise, so a
network learns it and the check's certification and attacks see a classifier better than
chance; otherwise pixels are uniform noise. Either way the numbers mean nothing about the real
datasets: a run on them checks mechanics (memory, time, every job kind), never results.
"""
from __future__ import annotations

import pickle
from pathlib import Path

import numpy as np

from bench.data import SYNTHETIC_MARKER

__all__ = ["SYNTHETIC", "write_cifar", "write_dataset", "write_svhn"]


def _images(rng: np.random.Generator, labels: np.ndarray, classes: int, learnable: bool) -> np.ndarray:
    """N×32×32×3 uint8 images of ``labels``."""
    if not learnable:
        return rng.integers(0, 256, (len(labels), 32, 32, 3), dtype=np.uint8)
    templates = np.random.default_rng(12345).uniform(0, 1, (classes, 32, 32, 3))
    noise = rng.uniform(-0.5, 0.5, (len(labels), 32, 32, 3))
    return (np.clip(0.5 * templates[labels] + 0.25 + 0.5 * noise, 0, 1) * 255).round().astype(np.uint8)


def write_cifar(root: Path, classes: int, n_per_file: int, seed: int = 0, learnable: bool = False) -> dict:
    """CIFAR python format: pickled dicts with uint8 rows of 3072 (channel-major) and labels, in
    ``cifar-10-batches-py`` (five train batches, one test batch) or ``cifar-100-python``."""
    rng = np.random.default_rng(seed)
    if classes == 10:
        folder, train, test, key, meta, names = ("cifar-10-batches-py",
            [f"data_batch_{i}" for i in range(1, 6)], ["test_batch"], "labels", "batches.meta", "label_names")
    else:
        folder, train, test, key, meta, names = ("cifar-100-python", ["train"], ["test"], "fine_labels",
                                                 "meta", "fine_label_names")
    base = Path(root) / folder
    base.mkdir(parents=True, exist_ok=True)
    written = {}
    for name in train + test:
        if learnable:
            labels = np.arange(n_per_file) % classes
            data = _images(rng, labels, classes, True).transpose(0, 3, 1, 2).reshape(n_per_file, 3072)
            labels = [int(x) for x in labels]
        else:
            data = rng.integers(0, 256, (n_per_file, 3072), dtype=np.uint8)
            labels = list(rng.integers(0, classes, n_per_file))
        with open(base / name, "wb") as f:
            pickle.dump({"data": data, key: labels}, f)
        written[name] = (data, labels)
    with open(base / meta, "wb") as f:
        pickle.dump({names: [f"class{i}" for i in range(classes)]}, f)
    return written


def write_svhn(root: Path, n_train: int, n_test: int, seed: int = 0, learnable: bool = False) -> dict:
    """SVHN .mat format: X is 32×32×3×N, y is N×1 with labels 1..10 (10 stands for digit 0)."""
    from scipy.io import savemat

    rng = np.random.default_rng(seed)
    out = {}
    (Path(root) / "svhn").mkdir(parents=True, exist_ok=True)
    for split, n in (("train", n_train), ("test", n_test)):
        digits = np.arange(n) % 10
        if learnable:
            X = _images(rng, digits, 10, True).transpose(1, 2, 3, 0)
        else:
            X = rng.integers(0, 256, (32, 32, 3, n), dtype=np.uint8)
        y = (digits + 1).reshape(n, 1).astype(np.uint8)
        savemat(Path(root) / "svhn" / f"{split}_32x32.mat", {"X": X, "y": y})
        out[split] = (X, y)
    return out


#: the datasets this module can write
SYNTHETIC = ("cifar10", "cifar100", "svhn")


def write_dataset(name: str, root: Path, per_class: int, seed: int = 0) -> None:
    """``per_class`` learnable images per class in each split of dataset ``name`` under ``root``
    (CIFAR-10's train split is five files of ``per_class`` images per class / 5).

    A marker file ``root/SYNTHETIC`` lists what was written; a root holding real files of
    ``name`` (no marker naming it) is refused, so real data is never overwritten."""
    root = Path(root)
    marker = root / SYNTHETIC_MARKER
    folder = {"cifar10": "cifar-10-batches-py", "cifar100": "cifar-100-python", "svhn": "svhn"}.get(name)
    written = marker.read_text().split() if marker.exists() else []
    if folder and (root / folder).exists() and name not in written:
        raise FileExistsError(f"{root / folder} holds {name} files that bench.data.synthetic did not write: refusing to "
                              f"overwrite them; give the synthetic data its own data.root")
    root.mkdir(parents=True, exist_ok=True)
    marker.write_text("\n".join(sorted({*written, name})) + "\n")
    if name == "cifar10":
        write_cifar(root, 10, max(10, per_class * 10 // 5), seed, learnable=True)
    elif name == "cifar100":
        write_cifar(root, 100, per_class * 100, seed, learnable=True)
    elif name == "svhn":
        write_svhn(root, per_class * 10, per_class * 10, seed, learnable=True)
    else:
        raise ValueError(f"no synthetic writer for '{name}'; known: {', '.join(SYNTHETIC)}")
