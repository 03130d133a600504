"""Datasets as tensors: the decoded cache, the paper's splits (Section 4, Table 6) and
stratified subsets, and :func:`stage`, which does for a dataset what a job would before it runs."""
from __future__ import annotations

import json
import logging
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from bench.data import staging
from bench.data.info import FILES, FOLDERS, SPLITS, TRAIN_FRACTION, DatasetInfo, dataset_info, default_root
from bench.data.lock import dataset_lock
from bench.data.staging import DatasetNotFoundError, is_synthetic
from bench.io import atomic_path

log = logging.getLogger(__name__)


@dataclass
class Split:
    """One split of a dataset held in memory: ``images`` float N×C×H×W in [0,1], ``labels`` long N."""

    info: DatasetInfo
    name: str
    images: torch.Tensor
    labels: torch.Tensor

    def __len__(self) -> int:
        return len(self.labels)

    def to(self, device: torch.device | str) -> "Split":
        return Split(self.info, self.name, self.images.to(device), self.labels.to(device))

    def batches(
        self, batch_size: int, shuffle: bool = False, generator: torch.Generator | None = None
    ) -> Iterator[tuple[torch.Tensor, torch.Tensor]]:
        """Yield ``(images, labels)`` batches as tensor slices (a seeded permutation if shuffled)."""
        n = len(self)
        if shuffle:
            order = torch.randperm(n, generator=generator).to(self.labels.device)
            for start in range(0, n, batch_size):
                idx = order[start : start + batch_size]
                yield self.images[idx], self.labels[idx]
        else:
            for start in range(0, n, batch_size):
                yield self.images[start : start + batch_size], self.labels[start : start + batch_size]


def _to_tensors(name: str, ds) -> tuple[torch.Tensor, torch.Tensor]:
    """uint8 images N×C×H×W and long labels from a torchvision dataset's in-memory arrays."""
    if name in ("mnist", "fashion_mnist"):
        images = torch.as_tensor(ds.data).unsqueeze(1)
        labels = torch.as_tensor(ds.targets)
    elif name == "svhn":  # stored N×C×H×W already, labels 0..9 after torchvision's 10 -> 0
        images = torch.from_numpy(np.ascontiguousarray(ds.data))
        labels = torch.as_tensor(ds.labels)
    else:  # CIFAR: N×H×W×C
        images = torch.from_numpy(np.ascontiguousarray(ds.data)).permute(0, 3, 1, 2)
        labels = torch.as_tensor(ds.targets)
    return images.contiguous(), labels.long()


def _fingerprint(name: str, root: Path) -> str:
    """Names, sizes and modification times of the dataset's files: the cache's validity key."""
    folder = root / FOLDERS[name]
    files = sorted(p for p in folder.rglob("*") if p.is_file()) if folder.exists() else []
    return json.dumps([[str(p.relative_to(folder)), p.stat().st_size, p.stat().st_mtime_ns] for p in files])


def _cache_path(name: str, root: Path, train: bool, verify: bool) -> Path:
    return root / ".cache" / f"{name}_{'train' if train else 'test'}{'' if verify else '_unverified'}.safetensors"


def _cache_current(name: str, root: Path, train: bool, verify: bool) -> bool:
    """Whether the decoded cache of this file set exists and matches the files on disk."""
    meta = _cache_path(name, root, train, verify).with_suffix(".json")
    if not (meta.exists() and meta.with_suffix(".safetensors").exists()):
        return False
    try:
        return json.loads(meta.read_text()).get("fingerprint") == _fingerprint(name, root)
    except (OSError, ValueError):
        return False


def _read_cache(name: str, root: Path, train: bool, verify: bool) -> tuple[torch.Tensor, torch.Tensor] | None:
    if not _cache_current(name, root, train, verify):
        return None
    from safetensors.torch import load_file

    tensors = load_file(str(_cache_path(name, root, train, verify)))
    return tensors["images"], tensors["labels"]


def _read_raw(
    name: str, root: Path, train: bool, download: bool, verify: bool, actions: list[str] | None = None
) -> tuple[torch.Tensor, torch.Tensor]:
    """uint8 images and labels of one file set, from the decoded cache when it is current.

    A current cache is read without any lock (the normal path of every job). Otherwise, under
    the dataset's lock: Fashion-MNIST is copied from the Debian package if it is not under
    ``root``; the cache is looked at again (a job that held the lock may have written it); a
    missing dataset is downloaded (if ``download``); the files are decoded through torchvision
    and ``<root>/.cache/<name>_<split>`` (safetensors) is written. ``actions`` collects what
    was done ("copied", "downloaded", "decoded"), for :func:`stage`.
    """
    from safetensors.torch import save_file

    info = dataset_info(name)
    actions = [] if actions is None else actions
    cached = _read_cache(name, root, train, verify)
    if cached is not None:
        return cached
    with dataset_lock(name, root, "decoding it"):
        if name == "fashion_mnist" and not (root / FOLDERS[name] / FILES[name][0]).is_file():
            if staging.stage_debian_fashion_mnist(root):
                actions.append("copied")
        cached = _read_cache(name, root, train, verify)
        if cached is not None:
            return cached
        try:
            ds = staging.torchvision_dataset(name, root, train, download=False, verify=verify)
        except RuntimeError as missing:
            if not download:
                raise DatasetNotFoundError(name, root, info.fetch_hint, missing, reason="no-download") from None
            with dataset_lock(name, root, "downloading it"):
                log.info("dataset '%s' is not under %s: downloading it through torchvision", name, root / FOLDERS[name])
                try:
                    staging.download(name, root, train, verify)
                    ds = staging.torchvision_dataset(name, root, train, download=False, verify=verify)
                except Exception as exc:  # network refused, timed out, corrupted download
                    offline = staging.network_error(exc)
                    if offline is not None:
                        raise DatasetNotFoundError(name, root, info.fetch_hint, offline, reason="offline") from None
                    raise DatasetNotFoundError(name, root, info.fetch_hint, exc, reason="failed") from None
            actions.append("downloaded")
        fingerprint = _fingerprint(name, root)
        images, labels = _to_tensors(name, ds)
        cache = _cache_path(name, root, train, verify)
        atomic_path(cache, lambda tmp: save_file({"images": images, "labels": labels}, str(tmp)))
        atomic_path(cache.with_suffix(".json"), lambda tmp: tmp.write_text(json.dumps({"fingerprint": fingerprint})))
        actions.append("decoded")
    return images, labels


def stage(name: str, root: str | Path | None = None, *, verify_checksums: bool = True) -> str:
    """Make dataset ``name`` ready under ``root`` for jobs that may run offline.

    Gets the files of the train and test sets (already there, copied from the Debian package,
    or downloaded through torchvision) and writes their decoded cache, under the dataset's lock,
    exactly as a job would. Returns one line saying what was done. Raises
    :class:`DatasetNotFoundError` when the data cannot be had (no network, say).
    """
    dataset_info(name)
    root = Path(root) if root is not None else default_root()
    verify_checksums = verify_checksums and not is_synthetic(name, root)
    folder = root / FOLDERS[name]
    had_files = all((folder / f).is_file() for f in FILES[name])
    actions: list[str] = []
    sizes = [len(_read_raw(name, root, train, True, verify_checksums, actions)[1]) for train in (True, False)]
    if had_files:
        files = f"files already under {folder}"
    elif "downloaded" in actions:
        files = f"downloaded into {folder}"
    elif "copied" in actions:
        files = f"copied from the Debian package ({staging.DEBIAN_FASHION_MNIST}) into {folder}"
    else:  # another process put them there meanwhile
        files = f"files under {folder}"
    cache = "decoded cache written" if "decoded" in actions else "decoded cache current"
    return (f"{name}: {files}; {sizes[0]} training and {sizes[1]} test images; {cache} "
            f"({root / '.cache'})")


def split_indices(n: int, seed: int = 0) -> tuple[torch.Tensor, torch.Tensor]:
    """The paper's 8:2 train/validation cut of ``n`` training images, by a seeded permutation."""
    perm = torch.randperm(n, generator=torch.Generator().manual_seed(seed))
    n_train = int(round(TRAIN_FRACTION * n))
    return perm[:n_train], perm[n_train:]


def stratified_subset(labels: torch.Tensor, per_class: int) -> torch.Tensor:
    """Indices of the first ``per_class`` examples of each class, in their original order."""
    if per_class < 1:
        raise ValueError(f"per_class must be >= 1, got {per_class}")
    order = torch.argsort(labels, stable=True)
    sorted_labels = labels[order]
    first = torch.searchsorted(sorted_labels, sorted_labels, right=False)
    rank = torch.arange(len(labels)) - first
    return torch.sort(order[rank < per_class]).values


def load_split(
    name: str,
    split: str,
    root: str | Path | None = None,
    *,
    subset_per_class: int | None = None,
    seed: int = 0,
    download: bool = True,
    verify_checksums: bool = True,
) -> Split:
    """Load one split (``train``, ``val`` or ``test``) of dataset ``name`` as float tensors.

    ``subset_per_class`` keeps the first k examples per class of that split (deterministic,
    stratified) for quick runs. ``seed`` fixes the 8:2 train/validation cut.
    ``verify_checksums=False`` accepts files that are not the official release (tests).
    """
    info = dataset_info(name)
    if split not in SPLITS:
        raise ValueError(f"unknown split '{split}'; known: {', '.join(SPLITS)}")
    root = Path(root) if root is not None else default_root()
    verify_checksums = verify_checksums and not is_synthetic(name, root)
    images, labels = _read_raw(name, root, split != "test", download, verify_checksums)
    if split != "test":
        train_idx, val_idx = split_indices(len(labels), seed)
        idx = train_idx if split == "train" else val_idx
        images, labels = images[idx], labels[idx]
    if subset_per_class is not None:
        keep = stratified_subset(labels, subset_per_class)
        images, labels = images[keep], labels[keep]
    return Split(info, split, images.float().div_(255.0), labels)
