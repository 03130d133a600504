"""Shared fixtures: tiny datasets written in each dataset's real on-disk format."""
from __future__ import annotations

import pickle
import struct
from pathlib import Path

import numpy as np
import pytest
import torch

torch.set_num_threads(2)


def write_idx(path: Path, array: np.ndarray) -> None:
    """IDX file (the MNIST format): magic 0x08 (ubyte) + ndim, big-endian dims, raw bytes."""
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "wb") as f:
        f.write(struct.pack(">BBBB", 0, 0, 0x08, array.ndim))
        f.write(struct.pack(f">{array.ndim}I", *array.shape))
        f.write(array.astype(np.uint8).tobytes())


def make_mnist_like(root: Path, folder: str, n_train: int, n_test: int, seed: int = 0):
    rng = np.random.default_rng(seed)
    arrays = {}
    for prefix, n in (("train", n_train), ("t10k", n_test)):
        images = rng.integers(0, 256, (n, 28, 28), dtype=np.uint8)
        labels = (np.arange(n) % 10).astype(np.uint8)
        write_idx(root / folder / "raw" / f"{prefix}-images-idx3-ubyte", images)
        write_idx(root / folder / "raw" / f"{prefix}-labels-idx1-ubyte", labels)
        arrays[prefix] = (images, labels)
    return arrays


def make_cifar_like(root: Path, classes: int, n_per_file: int, seed: int = 0):
    """CIFAR python format: pickled dicts with uint8 rows of 3072 (channel-major) and labels."""
    rng = np.random.default_rng(seed)
    if classes == 10:
        folder, train, test, key, meta, names = ("cifar-10-batches-py",
            [f"data_batch_{i}" for i in range(1, 6)], ["test_batch"], "labels", "batches.meta", "label_names")
    else:
        folder, train, test, key, meta, names = ("cifar-100-python", ["train"], ["test"], "fine_labels",
                                                 "meta", "fine_label_names")
    base = root / folder
    base.mkdir(parents=True, exist_ok=True)
    written = {}
    for name in train + test:
        data = rng.integers(0, 256, (n_per_file, 3072), dtype=np.uint8)
        labels = list(rng.integers(0, classes, n_per_file))
        with open(base / name, "wb") as f:
            pickle.dump({"data": data, key: labels}, f)
        written[name] = (data, labels)
    with open(base / meta, "wb") as f:
        pickle.dump({names: [f"class{i}" for i in range(classes)]}, f)
    return written


def make_svhn_like(root: Path, n_train: int, n_test: int, seed: int = 0):
    """SVHN .mat format: X is 32×32×3×N, y is N×1 with labels 1..10 (10 stands for digit 0)."""
    from scipy.io import savemat

    rng = np.random.default_rng(seed)
    out = {}
    (root / "svhn").mkdir(parents=True, exist_ok=True)
    for split, n in (("train", n_train), ("test", n_test)):
        X = rng.integers(0, 256, (32, 32, 3, n), dtype=np.uint8)
        y = (np.arange(n) % 10 + 1).reshape(n, 1).astype(np.uint8)
        savemat(root / "svhn" / f"{split}_32x32.mat", {"X": X, "y": y})
        out[split] = (X, y)
    return out


def train_spec(root: Path, **kw):
    """A small training run on the tiny MNIST-format data under ``root`` (``ours``, convnet, 2 epochs)."""
    from bench.train import TrainSpec

    base = dict(dataset="mnist", method="ours", arch="convnet", seed=3, epochs=2, batch_size=32,
                hparams={"n_samples": 2}, data_root=str(root), device="cpu")
    base.update(kw)
    return TrainSpec(**base)


@pytest.fixture
def tiny_root(tmp_path: Path) -> Path:
    return tmp_path / "data"
