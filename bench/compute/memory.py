"""A memory budget for forward passes, and the chunk sizes that fit it.

At the paper's scale (batch 128, n = 16–50 vicinity draws per image) the methods that forward many
draws per image (``ours``, ``da``, ``prl``) put 2,000–6,400 images through the network with
autograd in one step, and a vote (``Method.predict``, ``bench.evaluation.adaptive.VoteModel``) puts
batch × vote_samples images through it. This module lets those forwards run in chunks that fit
a process-wide budget:

- :func:`set_budget` / :func:`get_budget` / :func:`memory_budget`: the budget, in **bytes** of
  per-image memory one forward (plus its backward, when there is one) may take: the saved
  activations of a training step, the transient activations of an inference pass. The model's
  weights, gradients and optimiser state, and the inputs already drawn, are outside it: the
  caller sets the budget to what is left for activations. ``None`` (the default) means no
  chunking at all: every forward runs as one call, as before this module existed.
- :func:`activation_bytes`: the bytes per input image of a model, measured once by a probe and
  cached (per model object, input shape, dtype, device, train/inference, autocast dtype).
- :func:`chunk_size`: how many input images one forward may take under the budget.
- :func:`run_chunked`: run ``fn(start, stop)`` over ``range(total)`` in chunks, halving the chunk
  on an out-of-memory error (the probe is an estimate) and remembering the halved size.

The probe: on CUDA, the peak of ``torch.cuda.max_memory_allocated`` around a forward (with
autograd and a backward when ``train``) of a few copies of one input; on the CPU, an estimate:
with ``train``, the bytes of the tensors autograd saves for the backward
(``torch.autograd.graph.saved_tensors_hooks``, each storage counted once), otherwise the largest
input + output of any leaf module. The probe runs at two batch sizes and takes the slope, so that
per-call costs (weights saved for the backward, workspace) are not charged to every image.
"""
from __future__ import annotations

import contextlib
import logging
import weakref
from collections.abc import Callable, Hashable, Iterator
from typing import TypeVar

import torch
import torch.nn as nn
import torch.utils.checkpoint

log = logging.getLogger(__name__)

__all__ = [
    "activation_bytes",
    "chunk_size",
    "free_memory_budget",
    "get_budget",
    "is_out_of_memory",
    "map_in_chunks",
    "memory_budget",
    "run_chunked",
    "set_budget",
]

T = TypeVar("T")

#: the probe's two batch sizes (images); the slope between them is the per-image cost
PROBE_SIZES = (4, 8)

_budget: int | None = None
#: activation_bytes' cache: model object (weakly) -> {(shape, dtype, device, train, ...): bytes/image}
_probes: "weakref.WeakKeyDictionary[nn.Module, dict[tuple, float]]" = weakref.WeakKeyDictionary()
#: run_chunked's memory: key -> the largest chunk known to fit after an out-of-memory error
_learned: dict[Hashable, int] = {}


# --- the budget --------------------------------------------------------------------------------


def set_budget(budget: int | None) -> None:
    """Set the process-wide budget: ``budget`` bytes of per-image memory for one forward(+backward),
    or ``None`` for no chunking. Forgets the chunk sizes learned from out-of-memory errors."""
    global _budget
    if budget is not None:
        budget = int(budget)
        if budget <= 0:
            raise ValueError(f"memory budget must be a positive number of bytes or None, got {budget}")
    _budget = budget
    _learned.clear()


def get_budget() -> int | None:
    """The process-wide budget in bytes, or ``None`` (no chunking)."""
    return _budget


@contextlib.contextmanager
def memory_budget(budget: int | None) -> Iterator[None]:
    """``with memory_budget(bytes): ...``: the budget inside the block, the previous one after."""
    previous = _budget
    set_budget(budget)
    try:
        yield
    finally:
        set_budget(previous)


def free_memory_budget(device: torch.device | str, fraction: float = 0.8) -> int | None:
    """``fraction`` of the memory free on a CUDA ``device`` now (driver-free plus PyTorch's cached
    but unused blocks), in bytes; ``None`` on any other device. Call it once the model and its
    optimiser are in place, and pass the result to :func:`set_budget`."""
    device = torch.device(device)
    if device.type != "cuda":
        return None
    free, _ = torch.cuda.mem_get_info(device)
    cached = torch.cuda.memory_reserved(device) - torch.cuda.memory_allocated(device)
    return int(fraction * (free + cached))


# --- the probe ---------------------------------------------------------------------------------


def _autocast_dtype(device_type: str) -> torch.dtype | None:
    """The autocast dtype in force for ``device_type``, or ``None`` when autocast is off."""
    try:
        if torch.is_autocast_enabled(device_type):
            return torch.get_autocast_dtype(device_type)
    except (TypeError, RuntimeError):  # a device type autocast does not know
        pass
    return None


def _probe_input(example: torch.Tensor, k: int, train: bool) -> torch.Tensor:
    x = example[:1].detach().expand(k, *example.shape[1:]).clone()
    return x.requires_grad_(train and x.is_floating_point())


def _run_probe(model: nn.Module, x: torch.Tensor, train: bool) -> None:
    """One forward of ``x`` (with autograd and a backward to the input and parameters if ``train``);
    gradients are returned by ``torch.autograd.grad``, so no ``.grad`` is touched."""
    if not train:
        with torch.no_grad():
            model(x)
        return
    with torch.enable_grad():
        out = model(x)
        wrt = [t for t in (x, *model.parameters()) if t.requires_grad]
        if wrt and out.requires_grad:
            torch.autograd.grad(out.float().sum(), wrt, allow_unused=True)


def _saved_bytes(model: nn.Module, x: torch.Tensor) -> int:
    """Bytes of the tensors autograd saves for the backward of ``model(x)``, each storage once."""
    seen: dict[int, int] = {}

    def pack(t: torch.Tensor) -> torch.Tensor:
        try:
            storage = t.untyped_storage()
            seen[storage.data_ptr()] = storage.nbytes()
        except (RuntimeError, NotImplementedError):  # a tensor without storage (sparse, ...)
            seen[id(t)] = t.numel() * t.element_size()
        return t

    with torch.enable_grad(), torch.autograd.graph.saved_tensors_hooks(pack, lambda t: t):
        model(x)
    return sum(seen.values())


def _transient_bytes(model: nn.Module, x: torch.Tensor) -> int:
    """The largest input + output bytes of any leaf module in ``model(x)`` without autograd."""
    largest = 0

    def size(value) -> int:
        if isinstance(value, torch.Tensor):
            return value.numel() * value.element_size()
        if isinstance(value, (tuple, list)):
            return sum(size(v) for v in value)
        return 0

    def hook(module, inputs, output) -> None:
        nonlocal largest
        largest = max(largest, size(inputs) + size(output))

    leaves = [m for m in model.modules() if not list(m.children())] or [model]
    handles = [m.register_forward_hook(hook) for m in leaves]
    try:
        with torch.no_grad():
            model(x)
    finally:
        for h in handles:
            h.remove()
    return largest


def _measure(model: nn.Module, x: torch.Tensor, train: bool) -> int:
    """Bytes one forward(+backward) of the batch ``x`` takes beyond what was allocated before."""
    if x.device.type == "cuda":
        torch.cuda.synchronize(x.device)
        before = torch.cuda.memory_allocated(x.device)
        torch.cuda.reset_peak_memory_stats(x.device)
        _run_probe(model, x, train)
        torch.cuda.synchronize(x.device)
        return torch.cuda.max_memory_allocated(x.device) - before
    return _saved_bytes(model, x) if train else _transient_bytes(model, x)


def activation_bytes(model: nn.Module, example: torch.Tensor, train: bool) -> float:
    """Bytes of memory one input image of ``example``'s shape costs ``model`` in one forward.

    ``train``: with autograd and a backward (a training step, or a gradient attack through a
    vote); otherwise an inference forward. Measured once by a probe (see the module docstring)
    in the model's current mode and the autocast state in force, then cached per model object,
    input shape, dtype, device, ``train``, ``model.training`` and autocast dtype (a cache per
    model *class* would mix architectures: every model here is an ``nn.Sequential``).

    The probe leaves no trace: buffers (BatchNorm running statistics) are restored, the random
    number generators are forked (dropout draws nothing from the run's streams) and parameter
    ``.grad`` is untouched. Returns at least 1.
    """
    device = example.device
    key = (tuple(example.shape[1:]), example.dtype, str(device), bool(train), model.training,
           _autocast_dtype(device.type))
    cache = _probes.setdefault(model, {})
    if key in cache:
        return cache[key]
    buffers = [(b, b.detach().clone()) for b in model.buffers()]
    devices = [device] if device.type == "cuda" else []
    try:
        with torch.random.fork_rng(devices=devices):
            small, large = (_measure(model, _probe_input(example, k, train), train) for k in PROBE_SIZES)
    finally:
        with torch.no_grad():
            for buffer, saved in buffers:
                buffer.copy_(saved)
    slope = (large - small) / (PROBE_SIZES[1] - PROBE_SIZES[0])
    per_image = max(1.0, slope if slope > 0 else large / PROBE_SIZES[1])
    cache[key] = per_image
    log.debug("activation probe: %s %s, train=%s: %.0f bytes per image", type(model).__name__, key[0],
              train, per_image)
    return per_image


def chunk_size(model: nn.Module, example: torch.Tensor, budget: int | None, train: bool) -> int | None:
    """Input images per forward of ``model`` that fit ``budget`` bytes (at least 1), from
    :func:`activation_bytes`; ``None`` when ``budget`` is ``None`` (no limit)."""
    if budget is None:
        return None
    return max(1, int(budget // activation_bytes(model, example, train)))


# --- running in chunks -------------------------------------------------------------------------


def is_out_of_memory(error: BaseException) -> bool:
    """``torch.cuda.OutOfMemoryError``, or a ``RuntimeError`` whose message says "out of memory"."""
    oom = getattr(torch.cuda, "OutOfMemoryError", ())
    return (bool(oom) and isinstance(error, oom)) or (
        isinstance(error, RuntimeError) and "out of memory" in str(error).lower())


def run_chunked(fn: Callable[[int, int], T], total: int, chunk: int | None,
                key: Hashable | None = None) -> list[T]:
    """``[fn(start, stop), ...]`` over consecutive ranges covering ``range(total)``, each at most
    ``chunk`` long (``None``: one call for everything).

    On an out-of-memory error (:func:`is_out_of_memory`) the failed range is retried with half the
    chunk, with a warning; ranges already done are kept, so ``fn`` must leave no partial effect
    when it fails. A range of 1 that runs out of memory re-raises. With ``key``, the halved size
    is remembered for later calls with the same key (until :func:`set_budget`), so that one
    out-of-memory error is not paid again on every batch.
    """
    results: list[T] = []
    if total <= 0:
        return results
    chunk = total if chunk is None else max(1, int(chunk))
    if key is not None and key in _learned:
        chunk = min(chunk, _learned[key])
    start = 0
    while start < total:
        stop = min(start + chunk, total)
        try:
            results.append(fn(start, stop))
        except RuntimeError as error:
            if not is_out_of_memory(error) or stop - start <= 1:
                raise
        else:
            start = stop
            continue
        # outside the except block, so that the error's frames (and their tensors) are freed
        chunk = max(1, (stop - start) // 2)
        if key is not None:
            _learned[key] = chunk
        if torch.cuda.is_available():
            torch.cuda.empty_cache()
        log.warning("out of memory on %d images in one forward; retrying with chunks of %d",
                    stop - start, chunk)
    return results


def map_in_chunks(fn: Callable[[torch.Tensor], torch.Tensor], inputs: torch.Tensor, model: nn.Module, *,
                  train: bool, group: int = 1, checkpoint: bool = False) -> torch.Tensor:
    """``fn(inputs)``, computed as ``torch.cat([fn(piece), ...])`` over pieces of ``inputs`` (along
    dim 0) that fit the budget for ``model`` (:func:`chunk_size`); with no budget, one call.

    Each piece holds whole groups of ``group`` consecutive rows (the ``n`` inputs of one image),
    so ``fn`` may reduce over a group; the result equals ``fn(inputs)`` whenever ``fn`` acts on
    each group separately. With ``checkpoint`` (for a forward under autograd whose backward comes
    later, such as an attack's gradient through a vote), each piece runs under
    ``torch.utils.checkpoint`` when there is more than one, so that only one piece's activations
    are alive at a time in the backward, at the cost of a second forward of each piece.
    Out-of-memory errors in the forward halve the piece (:func:`run_chunked`); in the backward
    they cannot be retried.
    """
    chunk = chunk_size(model, inputs, get_budget(), train)
    if chunk is None:
        return fn(inputs)
    if len(inputs) % group:
        raise ValueError(f"{len(inputs)} inputs are not whole groups of {group}")
    groups = len(inputs) // group

    def piece(start: int, stop: int) -> torch.Tensor:
        rows = inputs[start * group : stop * group]
        if checkpoint and stop - start < groups:
            return torch.utils.checkpoint.checkpoint(fn, rows, use_reentrant=False)
        return fn(rows)

    key = ("map", id(model), tuple(inputs.shape[1:]), group, train)
    return torch.cat(run_chunked(piece, groups, max(1, chunk // group), key=key))
