"""The device a job computes on, and a clear stop when a GPU was asked for and is missing.

A GPU job that silently falls back to the CPU (a node whose driver is too old for torch's CUDA
build, say) runs on CPU threads until its time limit: :func:`resolve_device` refuses instead.
"""
from __future__ import annotations

import torch

__all__ = ["resolve_device"]


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
    """``device`` if given, else CUDA when available, else the CPU.

    A ``cuda`` device that is not available, or ``require_gpu`` (the job's resources ask for a
    GPU) on a machine without one, raises RuntimeError with the reason, never a CPU fallback.
    """
    wants_cuda = require_gpu or (device is not None and str(device).startswith("cuda"))
    if wants_cuda and not torch.cuda.is_available():
        asked = f"device: {device}" if device else "resources.gpus > 0"
        raise RuntimeError(f"the config asks for a GPU ({asked}) but none is usable: {_no_cuda_reason()}. "
                           "Run on a GPU node, or set device: cpu and resources.gpus: 0 to run on the CPU.")
    if device:
        return torch.device(device)
    return torch.device("cuda" if torch.cuda.is_available() else "cpu")
