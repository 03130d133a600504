"""Datasets as in-memory tensors: MNIST, Fashion-MNIST, SVHN, CIFAR-10 and CIFAR-100.

Every dataset is read through torchvision's own dataset class (its on-disk format, its parser;
for CIFAR its files and checks, with the pickled batches read by the restricted unpickler of
:mod:`bench.safe_pickle`, never by ``pickle.load``) and held as one float tensor of images in
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
(:func:`bench.datalock.dataset_lock`), so DAG jobs that start together never download or stage
the same dataset at once. Reading data whose decoded cache is current takes no lock. Compute
nodes are often offline: a dataset that is missing and cannot be downloaded for lack of network
raises :class:`DatasetNotFoundError` saying so and how to stage the data beforehand on a machine
with network (``python -m bench data fetch --config <config>``, which calls :func:`stage` for
every dataset of the config).
"""
from __future__ import annotations

import contextlib
import errno
import gzip
import json
import logging
import os
import re
import shutil
import socket
import urllib.error
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from bench.datalock import DatasetLockTimeout, dataset_lock
from bench.io import atomic_path
from bench.registry import Registry

log = logging.getLogger(__name__)

__all__ = [
    "DATASETS",
    "DatasetInfo",
    "DatasetLockTimeout",
    "DatasetNotFoundError",
    "Split",
    "dataset_available",
    "dataset_lock",
    "default_root",
    "load_split",
    "stage",
    "split_indices",
    "stratified_subset",
]

DEBIAN_FASHION_MNIST = Path("/usr/share/datasets/fashion-mnist")
SPLITS = ("train", "val", "test")
TRAIN_FRACTION = 0.8


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


def _brief(exc: BaseException) -> str:
    """``Type: first line of the message`` of an exception, for one-line error messages."""
    text = str(exc).strip().splitlines()
    return f"{type(exc).__name__}: {text[0]}" if text else type(exc).__name__


class DatasetNotFoundError(FileNotFoundError):
    """A dataset is neither on disk nor downloadable; the message says where and how to get it.

    ``reason`` is ``"no-download"`` (``download=False``), ``"offline"`` (the download failed for
    lack of network) or ``"failed"`` (any other download failure). The message names the dataset,
    the folder looked at and the commands that stage the data on a machine with network.
    """

    def __init__(self, name: str, path: Path, hint: str, cause: BaseException | str | None = None,
                 reason: str = "failed"):
        path = Path(path)
        folder = path / FOLDERS[name] if name in FOLDERS else path
        cause_text = (_brief(cause) if isinstance(cause, BaseException) else cause) if cause else ""
        why = {
            "no-download": "and downloading is off (download=False)",
            "offline": "and it cannot be downloaded from here: no network",
            "failed": "and it could not be downloaded",
        }[reason]
        lines = [
            f"dataset '{name}' not found under {folder} {why}" + (f" ({cause_text})" if cause_text else "") + ".",
            "Stage it before submitting jobs, on a machine with network (a login node, say):",
            "  python -m bench data fetch --config <config>   (every dataset of the config, under its data.root)",
            f"  python -m bench data fetch {name} --root {path}",
        ]
        default_hint = _fetch(name)
        if hint and hint != default_hint:
            lines.append(f"Or get it with: {hint.replace('<data root>', str(path))}")
        super().__init__("\n".join(lines))
        self.name, self.path, self.folder, self.reason = name, path, folder, reason


def dataset_info(name: str) -> DatasetInfo:
    """The :class:`DatasetInfo` of ``name``; an unknown name lists the known ones."""
    return DATASETS[name]


def default_root() -> Path:
    """The data root: ``$BENCH_DATA`` if set, else ``./data``."""
    return Path(os.environ.get("BENCH_DATA", "data"))


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


# --- reading through torchvision -------------------------------------------------------------


def _without_checksums(cls: type) -> type:
    """A subclass of a torchvision dataset class that checks files exist but not their MD5.

    Used for files that are not the official release (the tests' tiny files in the real format).
    """
    attrs: dict = {}
    for key in ("train_list", "test_list"):
        if hasattr(cls, key):
            attrs[key] = [[fname, None] for fname, _ in getattr(cls, key)]
    if hasattr(cls, "meta"):
        attrs["meta"] = {**cls.meta, "md5": None}
    if hasattr(cls, "split_list"):
        attrs["split_list"] = {k: [url, fname, None] for k, (url, fname, _) in cls.split_list.items()}
    return type(cls.__name__ + "Unverified", (cls,), attrs)


class _RestrictedCIFAR:
    """Mixin over torchvision's ``CIFAR10``/``CIFAR100``: the same files, checks and layout, but
    every batch and the meta file are read by :func:`bench.safe_pickle.load_restricted`.

    torchvision reads them with a plain ``pickle.load``, which runs any callable a crafted file
    names; the checksums would stop such a file, but synthetic and test roots skip them. So the
    restricted reader is used whether checksums are verified or not.
    """

    def __init__(self, root: str, train: bool = True, download: bool = False) -> None:
        from torchvision.datasets.vision import VisionDataset

        VisionDataset.__init__(self, root)  # not CIFAR10.__init__: that one unpickles with pickle.load
        self.train = train
        if download:
            self.download()
        if not self._check_integrity():  # a RuntimeError, as torchvision's: "missing" to _read_raw
            raise RuntimeError("Dataset not found or corrupted. You can use download=True to download it")
        data, targets = [], []
        for file_name, _ in self.train_list if train else self.test_list:
            entry = self._read(file_name, "data")
            data.append(np.asarray(entry["data"], dtype=np.uint8))
            targets.extend(int(t) for t in entry["labels" if "labels" in entry else "fine_labels"])
        self.data = np.vstack(data).reshape(-1, 3, 32, 32).transpose((0, 2, 3, 1))  # HWC, as torchvision
        self.targets = targets
        self._load_meta()

    def _read(self, file_name: str, key: str) -> dict:
        """One pickled dict of the dataset's folder, which must hold ``key``."""
        from bench.safe_pickle import load_restricted

        path = Path(self.root) / self.base_folder / file_name
        entry = load_restricted(path)
        if not isinstance(entry, dict) or key not in entry or (
                key == "data" and "labels" not in entry and "fine_labels" not in entry):
            raise ValueError(f"{path} is not a CIFAR batch of the python format (a dict with '{key}'"
                             f"{' and labels' if key == 'data' else ''}); delete it and stage the dataset again")
        return entry

    def _load_meta(self) -> None:
        from torchvision.datasets.utils import check_integrity

        path = Path(self.root) / self.base_folder / self.meta["filename"]
        if not check_integrity(str(path), self.meta["md5"]):
            raise RuntimeError("Dataset metadata file not found or corrupted. You can use download=True to download it")
        self.classes = self._read(self.meta["filename"], self.meta["key"])[self.meta["key"]]
        self.class_to_idx = {c: i for i, c in enumerate(self.classes)}


_TV_CLASSES = {
    "mnist": "MNIST",
    "fashion_mnist": "FashionMNIST",
    "svhn": "SVHN",
    "cifar10": "CIFAR10",
    "cifar100": "CIFAR100",
}
#: the folder under the data root that holds each dataset's files (torchvision's layout)
FOLDERS = {"mnist": "MNIST", "fashion_mnist": "FashionMNIST", "svhn": "svhn",
           "cifar10": "cifar-10-batches-py", "cifar100": "cifar-100-python"}

_IDX = [f"raw/{p}-{k}-idx{d}-ubyte" for p in ("train", "t10k") for k, d in (("images", 3), ("labels", 1))]
#: the files torchvision's reader opens for both splits, relative to the dataset's folder
FILES = {"mnist": _IDX, "fashion_mnist": _IDX, "svhn": ["train_32x32.mat", "test_32x32.mat"],
         "cifar10": [*(f"data_batch_{i}" for i in range(1, 6)), "test_batch", "batches.meta"],
         "cifar100": ["train", "test", "meta"]}


def dataset_available(name: str, root: str | Path) -> tuple[bool, str]:
    """Whether the files of dataset ``name`` are on disk, checked by name only (nothing is
    decoded, hashed or downloaded, so it is cheap enough to run whenever the DAG is built).

    Returns ``(True, where)`` when every file torchvision reads for the train and test sets is
    under ``root`` (or, for Fashion-MNIST, in the Debian package ``dataset-fashion-mnist``, which
    :func:`load_split` stages under ``root``), else ``(False, why)``, naming the folder looked at,
    the first missing file and the command that gets the data.
    """
    info = dataset_info(name)
    root = Path(root)
    folder = root / FOLDERS[name]
    missing = [f for f in FILES[name] if not (folder / f).is_file()]
    if not missing:
        return True, f"dataset '{name}' found under {folder}"
    if name == "fashion_mnist" and all((DEBIAN_FASHION_MNIST / f"{Path(f).name}.gz").is_file() for f in FILES[name]):
        return True, f"dataset '{name}' found in the Debian package dataset-fashion-mnist ({DEBIAN_FASHION_MNIST})"
    more = f" and {len(missing) - 1} more" if len(missing) > 1 else ""
    return False, (f"dataset '{name}' not found under {folder} (missing {missing[0]}{more}); "
                   f"get it with: {info.fetch_hint.replace('<data root>', str(root))}")


def _tv_dataset(name: str, root: Path, train: bool, download: bool, verify: bool):
    from torchvision import datasets as tvd  # imported here: jobs that hit the cache skip it

    cls = getattr(tvd, _TV_CLASSES[name])
    if name in ("cifar10", "cifar100"):  # never torchvision's plain pickle.load (bench.safe_pickle)
        cls = type(cls.__name__ + "Restricted", (_RestrictedCIFAR, cls), {})
    if not verify:
        cls = _without_checksums(cls)
    if name == "svhn":
        return cls(str(root / "svhn"), split="train" if train else "test", download=download)
    return cls(str(root), train=train, download=download)


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


def _stage_debian_fashion_mnist(root: Path) -> bool:
    """Copy the Debian package's Fashion-MNIST into torchvision's layout under ``root``.

    Returns True if the files are in place afterwards. Copies under the dataset's lock (so
    concurrent jobs copy once) and writes each file atomically.
    """
    raw = root / "FashionMNIST" / "raw"
    names = [
        "train-images-idx3-ubyte", "train-labels-idx1-ubyte",
        "t10k-images-idx3-ubyte", "t10k-labels-idx1-ubyte",
    ]
    if all((raw / n).exists() for n in names):
        return True
    if not all((DEBIAN_FASHION_MNIST / f"{n}.gz").exists() for n in names):
        return False
    with dataset_lock("fashion_mnist", root, "copying it from the Debian package"):
        raw.mkdir(parents=True, exist_ok=True)
        copied = 0
        for n in names:
            target = raw / n
            if target.exists():
                continue

            def unzip(tmp: Path, name: str = n) -> None:
                with gzip.open(DEBIAN_FASHION_MNIST / f"{name}.gz", "rb") as src, open(tmp, "wb") as dst:
                    shutil.copyfileobj(src, dst)

            atomic_path(target, unzip)
            copied += 1
        if copied:
            log.info("staged Fashion-MNIST from %s into %s", DEBIAN_FASHION_MNIST, raw)
    return True


# --- downloads -------------------------------------------------------------------------------


@contextlib.contextmanager
def _socket_timeout(seconds: float):
    old = socket.getdefaulttimeout()
    socket.setdefaulttimeout(seconds)
    try:
        yield
    finally:
        socket.setdefaulttimeout(old)


def _download(name: str, root: Path, train: bool, verify: bool) -> None:
    """Download the files of one split of ``name`` under ``root`` through torchvision.

    The one place that touches the network (tests replace it); called under the dataset's lock.
    MNIST, Fashion-MNIST and CIFAR download both splits at once; SVHN only the one asked for.
    """
    with _socket_timeout(30):
        _tv_dataset(name, root, train, download=True, verify=verify)


_NETWORK_ERRNOS = {errno.ENETUNREACH, errno.ENETDOWN, errno.EHOSTUNREACH, errno.EHOSTDOWN, errno.ECONNREFUSED,
                   errno.ECONNRESET, errno.ECONNABORTED, errno.ETIMEDOUT}
_URLOPEN_ERROR = re.compile(r"<urlopen error [^\n]*>")


def _network_error(exc: BaseException) -> BaseException | str | None:
    """The lack-of-network error behind a failed download (the exception, or its text), else None.

    Network errors: ``URLError`` (name resolution, refused or unreachable connection; not
    ``HTTPError``, which means a server answered), socket timeouts, ``ConnectionError`` and
    ``OSError`` with a network errno, anywhere in the exception's chain. torchvision's MNIST
    folds the errors of its mirrors into one ``RuntimeError`` text, so ``<urlopen error ...>``
    in a message counts too.
    """
    seen: set[int] = set()
    todo: list[BaseException | None] = [exc]
    while todo:
        e = todo.pop()
        if e is None or id(e) in seen:
            continue
        seen.add(id(e))
        if isinstance(e, urllib.error.HTTPError):
            continue
        if isinstance(e, (urllib.error.URLError, socket.timeout, ConnectionError, socket.gaierror)):
            return e
        if isinstance(e, OSError) and e.errno in _NETWORK_ERRNOS:
            return e
        reason = getattr(e, "reason", None)
        todo += [e.__cause__, e.__context__, reason if isinstance(reason, BaseException) else None]
    found = _URLOPEN_ERROR.search(str(exc))
    return found.group(0) if found else None


# --- the decoded cache and reading -----------------------------------------------------------


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
            if _stage_debian_fashion_mnist(root):
                actions.append("copied")
        cached = _read_cache(name, root, train, verify)
        if cached is not None:
            return cached
        try:
            ds = _tv_dataset(name, root, train, download=False, verify=verify)
        except RuntimeError as missing:
            if not download:
                raise DatasetNotFoundError(name, root, info.fetch_hint, missing, reason="no-download") from None
            with dataset_lock(name, root, "downloading it"):
                log.info("dataset '%s' is not under %s: downloading it through torchvision", name, root / FOLDERS[name])
                try:
                    _download(name, root, train, verify)
                    ds = _tv_dataset(name, root, train, download=False, verify=verify)
                except Exception as exc:  # network refused, timed out, corrupted download
                    offline = _network_error(exc)
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


#: a file in a data root listing the datasets :mod:`bench.synthetic` wrote there (one per line)
SYNTHETIC_MARKER = "SYNTHETIC"


def is_synthetic(name: str, root: str | Path) -> bool:
    """Whether dataset ``name`` under ``root`` was written by :mod:`bench.synthetic`: its files
    are then loaded without the official checksums (they are not the official release)."""
    marker = Path(root) / SYNTHETIC_MARKER
    return marker.is_file() and name in marker.read_text().split()


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
        files = f"copied from the Debian package ({DEBIAN_FASHION_MNIST}) into {folder}"
    else:  # another process put them there meanwhile
        files = f"files under {folder}"
    cache = "decoded cache written" if "decoded" in actions else "decoded cache current"
    return (f"{name}: {files}; {sizes[0]} training and {sizes[1]} test images; {cache} "
            f"({root / '.cache'})")


# --- splits and subsets ----------------------------------------------------------------------


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
