"""A dataset's files under a data root: found there, copied from the Debian package
(Fashion-MNIST), or downloaded through torchvision, and read by torchvision's own classes
(CIFAR's pickled batches by the restricted unpickler of :mod:`bench.data.safe_pickle`)."""
from __future__ import annotations

import contextlib
import errno
import gzip
import logging
import re
import shutil
import socket
import urllib.error
from pathlib import Path

import numpy as np

from bench.data.info import FILES, FOLDERS, _fetch, dataset_info
from bench.data.lock import dataset_lock
from bench.io import atomic_path

log = logging.getLogger(__name__)


DEBIAN_FASHION_MNIST = Path("/usr/share/datasets/fashion-mnist")


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
    every batch and the meta file are read by :func:`bench.data.safe_pickle.load_restricted`.

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
        from bench.data.safe_pickle import load_restricted

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


def torchvision_dataset(name: str, root: Path, train: bool, download: bool, verify: bool):
    from torchvision import datasets as tvd  # imported here: jobs that hit the cache skip it

    cls = getattr(tvd, _TV_CLASSES[name])
    if name in ("cifar10", "cifar100"):  # never torchvision's plain pickle.load (bench.data.safe_pickle)
        cls = type(cls.__name__ + "Restricted", (_RestrictedCIFAR, cls), {})
    if not verify:
        cls = _without_checksums(cls)
    if name == "svhn":
        return cls(str(root / "svhn"), split="train" if train else "test", download=download)
    return cls(str(root), train=train, download=download)


def stage_debian_fashion_mnist(root: Path) -> bool:
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


@contextlib.contextmanager
def _socket_timeout(seconds: float):
    old = socket.getdefaulttimeout()
    socket.setdefaulttimeout(seconds)
    try:
        yield
    finally:
        socket.setdefaulttimeout(old)


def download(name: str, root: Path, train: bool, verify: bool) -> None:
    """Download the files of one split of ``name`` under ``root`` through torchvision.

    The one place that touches the network (tests replace it); called under the dataset's lock.
    MNIST, Fashion-MNIST and CIFAR download both splits at once; SVHN only the one asked for.
    """
    with _socket_timeout(30):
        torchvision_dataset(name, root, train, download=True, verify=verify)


_NETWORK_ERRNOS = {errno.ENETUNREACH, errno.ENETDOWN, errno.EHOSTUNREACH, errno.EHOSTDOWN, errno.ECONNREFUSED,
                   errno.ECONNRESET, errno.ECONNABORTED, errno.ETIMEDOUT}


_URLOPEN_ERROR = re.compile(r"<urlopen error [^\n]*>")


def network_error(exc: BaseException) -> BaseException | str | None:
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


#: a file in a data root listing the datasets :mod:`bench.data.synthetic` wrote there (one per line)
SYNTHETIC_MARKER = "SYNTHETIC"


def is_synthetic(name: str, root: str | Path) -> bool:
    """Whether dataset ``name`` under ``root`` was written by :mod:`bench.data.synthetic`: its files
    are then loaded without the official checksums (they are not the official release)."""
    marker = Path(root) / SYNTHETIC_MARKER
    return marker.is_file() and name in marker.read_text().split()
