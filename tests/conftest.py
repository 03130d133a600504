"""Shared fixtures and helpers: tiny datasets written in each dataset's real on-disk format, a tiny
dataset description and a constant model."""
from __future__ import annotations

import os
import struct
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch

from bench.cli import snakemake_env
from bench.data import DatasetInfo

torch.set_num_threads(2)
# The suite's Snakemake runs are local: each would otherwise pay the SLURM plugin's `scontrol`
# probe, 9-10 s where the clients are installed and no controller answers (bench.cli.snakemake_env).
# The SLURM tests give their clients their own cluster's config.
os.environ.update(snakemake_env([], os.environ))


#: a tiny 3-class grayscale 8×8 dataset's description, for tests that need no files
TINY_INFO = DatasetInfo(name="tiny", title="tiny", channels=1, image_size=8, num_classes=3, mean=(0.5,),
                        std=(0.5,), fetch_hint="")


class Constant(torch.nn.Module):
    """Logits that favour class ``cls`` whatever the input (but still depend on it, for autograd)."""

    def __init__(self, cls: int = 1, k: int = 3):
        super().__init__()
        self.cls, self.k = cls, k

    def forward(self, x):
        logits = torch.zeros(len(x), self.k) + 0.0 * x.flatten(1).sum(1, keepdim=True)
        logits[:, self.cls] += 5.0
        return logits


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
    """CIFAR python format (:func:`bench.data.synthetic.write_cifar`, uniform noise pixels)."""
    from bench.data.synthetic import write_cifar

    return write_cifar(root, classes, n_per_file, seed)


def make_svhn_like(root: Path, n_train: int, n_test: int, seed: int = 0):
    """SVHN .mat format (:func:`bench.data.synthetic.write_svhn`, uniform noise pixels)."""
    from bench.data.synthetic import write_svhn

    return write_svhn(root, n_train, n_test, seed)


def train_spec(root: Path, **kw):
    """A small training run on the tiny MNIST-format data under ``root`` (``ours``, convnet, 2 epochs)."""
    from bench.training.loop import TrainSpec

    base = dict(dataset="mnist", method="ours", arch="convnet", seed=3, epochs=2, batch_size=32,
                hparams={"n_samples": 2}, data_root=str(root), device="cpu")
    base.update(kw)
    return TrainSpec(**base)


@pytest.fixture
def tiny_root(tmp_path: Path) -> Path:
    return tmp_path / "data"


@pytest.fixture(scope="session")
def smoke_run(tmp_path_factory) -> tuple[Path, subprocess.CompletedProcess]:
    """The smoke DAG (config/smoke.yaml, ``--cores 2``) run once per session in an empty working
    directory: (that directory, the finished Snakemake process). The tests that read its reports
    share it (about 6 minutes on 2 CPU cores); each asserts on the return code itself."""
    root = Path(__file__).resolve().parents[1]
    workdir = tmp_path_factory.mktemp("smoke")
    out = subprocess.run([sys.executable, "-m", "snakemake", "--snakefile", str(root / "Snakefile"), "--cores", "2",
                          "--configfile", str(root / "config" / "smoke.yaml")],
                         cwd=workdir, capture_output=True, text=True, timeout=900)
    return workdir, out
