"""The device a job computes on, and a clear stop when a GPU was asked for and is missing.

A GPU job that silently falls back to the CPU (a node whose driver is too old for torch's CUDA
build, say) runs on CPU threads until its time limit: :func:`resolve_device` refuses instead.

On a node with several GPUs visible to a job (a local ``snakemake --cores N --resources gpu=G``
run; a SLURM job sees only the GPUs it was given), each job leases one GPU for its lifetime
(:func:`lease_gpu`: an exclusive lock per GPU), so concurrent jobs spread over the GPUs instead
of all running on GPU 0.
"""
from __future__ import annotations

import fcntl
import logging
import os
import stat
import tempfile
from pathlib import Path

import torch

__all__ = ["UnsafeLockDir", "lease_gpu", "resolve_device"]

log = logging.getLogger(__name__)
_LEASES: list = []  # open lock files: a lease lasts as long as the job's process
_LEASED: list[int] = []  # the GPU this process leased: asked again, it is the answer (flock is per open file)


def _no_cuda_reason() -> str:
    build = torch.version.cuda
    if build is None:
        return f"this torch ({torch.__version__}) is a CPU-only build"
    try:
        count = torch.cuda.device_count()
    except RuntimeError as err:  # a driver that cannot run this build says so here
        return f"torch {torch.__version__} is built for CUDA {build}, and initialising CUDA failed: {err}"
    return (f"torch {torch.__version__} is built for CUDA {build} but sees {count} usable GPU(s): no GPU on this "
            "node, CUDA_VISIBLE_DEVICES hides it, or the NVIDIA driver is older than that CUDA build needs")


def resolve_device(device: str | None = None, require_gpu: bool = False) -> torch.device:
    """``device`` if given (``cuda`` without an index: a leased GPU, :func:`lease_gpu`), else
    CUDA when available, else the CPU.

    A ``cuda`` device that is not available, or ``require_gpu`` (the job's resources ask for a
    GPU) on a machine without one, raises RuntimeError with the reason, never a CPU fallback.
    """
    wants_cuda = require_gpu or (device is not None and str(device).startswith("cuda"))
    if wants_cuda and not torch.cuda.is_available():
        asked = f"device: {device}" if device else "resources.gpus > 0"
        raise RuntimeError(f"the config asks for a GPU ({asked}) but none is usable: {_no_cuda_reason()}. "
                           "Run on a GPU node, or set device: cpu and resources.gpus: 0 to run on the CPU.")
    if device and str(device) != "cuda":
        return torch.device(device)
    if not torch.cuda.is_available():
        return torch.device("cpu")
    count = torch.cuda.device_count()
    if count == 1:
        return torch.device("cuda")
    if not _LEASED:
        _LEASED.append(lease_gpu([_uuid(i) for i in range(count)]))
    torch.cuda.set_device(_LEASED[0])
    return torch.device(f"cuda:{_LEASED[0]}")


def _uuid(index: int) -> str:
    uuid = getattr(torch.cuda.get_device_properties(index), "uuid", None)
    # the physical GPU, not its index: two jobs that see different subsets of a node's GPUs
    # (CUDA_VISIBLE_DEVICES) then never lock the same GPU under two names
    return str(uuid) if uuid is not None else f"index{index}"


class UnsafeLockDir(RuntimeError):
    """The GPU lock folder is not private to this user: another user could plant links in it."""


def _private_dir(folder: Path) -> int:
    """A descriptor of ``folder``, created with mode 0o700 if missing, after checking that it is
    a real folder (not a symlink) owned by this user and writable by no one else.

    Why: the default folder has a predictable name under the shared temporary directory; another
    user who creates it first (or a link by that name) could redirect the lock files' opens.
    Lock files are then opened relative to this descriptor, so the folder checked is the one used.
    """
    folder.parent.mkdir(parents=True, exist_ok=True)
    try:
        folder.mkdir(mode=0o700)
    except FileExistsError:
        pass
    try:
        fd = os.open(folder, os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW | os.O_CLOEXEC)
    except OSError as err:  # ELOOP: a symlink; ENOTDIR: a file
        raise UnsafeLockDir(f"GPU lock folder {folder} is not a plain folder ({err.strerror}): refusing to use it; "
                            "remove it, or set $BENCH_GPU_LOCKS to a private folder") from None
    info = os.fstat(fd)
    problem = None
    if info.st_uid != os.getuid():
        problem = f"owned by uid {info.st_uid}, not this user ({os.getuid()})"
    elif info.st_mode & (stat.S_IWGRP | stat.S_IWOTH):
        problem = f"writable by group or others (mode {stat.S_IMODE(info.st_mode):o})"
    if problem:
        os.close(fd)
        raise UnsafeLockDir(f"GPU lock folder {folder} is {problem}: refusing to use it (another user could plant "
                            "links in it); remove it, or set $BENCH_GPU_LOCKS to a private folder")
    return fd


def _open_lock(folder_fd: int, folder: Path, name: str):
    """The lock file ``name`` in the checked folder, opened without following a symlink and
    without truncating (a flock needs no content), as a binary file object."""
    try:
        fd = os.open(name, os.O_RDWR | os.O_CREAT | os.O_NOFOLLOW | os.O_CLOEXEC, 0o600, dir_fd=folder_fd)
    except OSError as err:
        raise UnsafeLockDir(f"cannot open GPU lock file {folder / name} ({err.strerror}; a symlink is refused): "
                            "remove it") from None
    return os.fdopen(fd, "rb+", buffering=0)


def lease_gpu(gpus: list[str], lock_dir: str | Path | None = None) -> int:
    """The index in ``gpus`` (GPU identifiers) of a GPU no other job holds, leased until this
    process ends (an exclusive ``flock`` on ``<lock_dir>/gpu-<id>.lock``; ``lock_dir`` defaults
    to ``$BENCH_GPU_LOCKS`` or a per-user folder under the temporary directory, which must be
    private to this user: :func:`_private_dir`).

    With every GPU leased (more GPU jobs than GPUs: run Snakemake with ``--resources gpu=G``,
    G the number of GPUs), it waits for the GPU ``pid % len(gpus)``, logged, rather than
    overfilling one GPU's memory.
    """
    folder = Path(lock_dir or os.environ.get("BENCH_GPU_LOCKS")
                  or Path(tempfile.gettempdir()) / f"bench-gpu-locks-{os.getuid()}")
    folder_fd = _private_dir(folder)
    try:
        for index, gpu in enumerate(gpus):
            handle = _open_lock(folder_fd, folder, f"gpu-{gpu}.lock")
            try:
                fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except BlockingIOError:
                handle.close()
                continue
            _LEASES.append(handle)
            log.info("leased GPU %d (%s) of %d", index, gpu, len(gpus))
            return index
        index = os.getpid() % len(gpus)
        log.warning("all %d GPUs are leased by other jobs (run Snakemake with --resources gpu=%d): waiting for GPU %d",
                    len(gpus), len(gpus), index)
        handle = _open_lock(folder_fd, folder, f"gpu-{gpus[index]}.lock")
        fcntl.flock(handle, fcntl.LOCK_EX)
        _LEASES.append(handle)
        return index
    finally:
        os.close(folder_fd)
