"""auto_LiRPA 0.3 on current torch and numpy, and sound logit bounds through it.

auto-LiRPA 0.3 (Xu et al. 2020) is the only release on the package index. It was written for
torch < 1.13 and numpy < 2; four small incompatibilities stop it on torch 2.14 / numpy 2:

1. ``numpy.lib.arraysetops`` is gone (numpy 2): an alias module exposing ``isin`` suffices.
2. ``torch.onnx.symbolic_helper._set_opset_version`` is gone: set
   ``GLOBALS.export_onnx_opset_version`` of the TorchScript exporter instead.
3. ``torch._C.Node`` is no longer subscriptable (``node[key]``): route it to
   ``torch.onnx.symbolic_helper._node_get``.
4. ``BoundedModule._named_members`` lacks the ``remove_duplicate`` argument that
   ``nn.Module.parameters()`` now passes.

:func:`auto_lirpa` applies the patches once, then imports and returns the ``auto_LiRPA``
module. Always import auto_LiRPA through it.
"""
from __future__ import annotations

import contextlib
import functools
import sys
import types
import warnings
from typing import Literal

import numpy as np
import torch

__all__ = ["auto_lirpa", "bounded_model", "ieee_fp32", "logit_bounds", "margin_bounds", "margin_matrix"]


def _patch_numpy() -> None:
    if "numpy.lib.arraysetops" not in sys.modules:
        alias = types.ModuleType("numpy.lib.arraysetops")
        alias.isin = np.isin  # type: ignore[attr-defined]
        sys.modules["numpy.lib.arraysetops"] = alias


def _patch_torch_onnx() -> None:
    import torch.onnx.symbolic_helper as symbolic_helper

    if not hasattr(symbolic_helper, "_set_opset_version"):
        from torch.onnx._internal.torchscript_exporter._globals import GLOBALS

        def _set_opset_version(opset_version: int) -> None:
            GLOBALS.export_onnx_opset_version = opset_version

        symbolic_helper._set_opset_version = _set_opset_version  # type: ignore[attr-defined]

    if not hasattr(torch._C.Node, "__getitem__"):
        torch._C.Node.__getitem__ = lambda node, key: symbolic_helper._node_get(node, key)


def _patch_named_members(auto_LiRPA: types.ModuleType) -> None:
    from auto_LiRPA.bound_general import BoundedModule
    from auto_LiRPA.bound_multi_gpu import BoundDataParallel

    for cls in (BoundedModule, BoundDataParallel):
        original = cls._named_members
        if getattr(original, "_bench_patched", False):
            continue

        def _named_members(self, get_members_fn, prefix="", recurse=True,
                           remove_duplicate=True, _original=original):
            # auto_LiRPA's own version always removes duplicates.
            return _original(self, get_members_fn, prefix, recurse)

        _named_members._bench_patched = True  # type: ignore[attr-defined]
        cls._named_members = _named_members


@functools.cache
def auto_lirpa() -> types.ModuleType:
    """Return the ``auto_LiRPA`` module, patched for torch 2.14 and numpy 2 (see module doc)."""
    _patch_numpy()
    _patch_torch_onnx()
    with warnings.catch_warnings():
        # auto_LiRPA scripts a helper with torch.jit.script at import, deprecated in torch 2.14.
        warnings.simplefilter("ignore", FutureWarning)
        import auto_LiRPA

    _patch_named_members(auto_LiRPA)
    return auto_LiRPA


def bounded_model(model: torch.nn.Module, example: torch.Tensor) -> torch.nn.Module:
    """Wrap ``model`` in an auto_LiRPA ``BoundedModule`` traced on ``example`` (N×C×H×W).

    The trace runs in training mode, where auto_LiRPA parses dropout (in eval mode it cannot),
    on two images (a batch of one cannot pass BatchNorm1d in training mode); the buffers it
    changes (BatchNorm running statistics) are restored afterwards. The bounded module then
    takes ``model``'s own train/eval mode.
    """
    lirpa = auto_lirpa()
    was_training = model.training
    buffers = {k: v.clone() for k, v in model.state_dict().items()}
    sample = example[:2] if len(example) >= 2 else example.repeat(2, 1, 1, 1)
    model.train()
    try:
        bounded = lirpa.BoundedModule(model, sample.clone(), device=example.device)
    finally:
        model.load_state_dict(buffers)
        model.train(was_training)
    bounded.train(was_training)  # auto_LiRPA's train() returns None, not the module
    return bounded


def _boxed(x: torch.Tensor, eps: float):
    """``x`` as an auto_LiRPA BoundedTensor over the L∞ box ``[x-eps, x+eps] ∩ [0,1]``."""
    lirpa = auto_lirpa()
    ptb = lirpa.PerturbationLpNorm(norm=float("inf"), x_L=(x - eps).clamp(0.0, 1.0),
                                   x_U=(x + eps).clamp(0.0, 1.0))
    return lirpa.BoundedTensor(x, ptb)


def logit_bounds(
    bounded: torch.nn.Module,
    x: torch.Tensor,
    eps: float,
    method: Literal["IBP", "CROWN-IBP", "CROWN"] = "IBP",
) -> tuple[torch.Tensor, torch.Tensor]:
    """Sound lower and upper bounds of the logits over the L∞ box ``[x-eps, x+eps] ∩ [0,1]``.

    ``eps`` is in pixel units of [0,1] images. Returns ``(lower, upper)``, each N×K.
    The box is clipped to the valid image range, as every vicinity in this project is.
    """
    return bounded.compute_bounds(x=(_boxed(x, eps),), method=method)


def margin_matrix(labels: torch.Tensor, num_classes: int) -> torch.Tensor:
    """C with rows e_y − e_j for j ≠ y, shape N×(K−1)×K, so that C·z are the margins z_y − z_j."""
    eye = torch.eye(num_classes, device=labels.device)
    C = eye[labels].unsqueeze(1) - eye.unsqueeze(0)
    keep = torch.ones(len(labels), num_classes, dtype=torch.bool, device=labels.device)
    keep[torch.arange(len(labels)), labels] = False
    return C[keep].view(len(labels), num_classes - 1, num_classes)


@contextlib.contextmanager
def ieee_fp32():
    """IEEE fp32 arithmetic inside: a sound bound computed in lower precision is not sound.

    torch runs fp32 convolutions in TF32 on Ampere and newer GPUs by default
    (``torch.backends.cudnn.allow_tf32`` is True), a relative error around 1e-3 that can turn a
    margin just below 0 into a "certified" one; reduced-precision matmuls
    (``set_float32_matmul_precision``) and autocast do the same on any device. This turns all of
    them off and restores the previous settings on exit.
    """
    saved = (torch.backends.cuda.matmul.allow_tf32, torch.backends.cudnn.allow_tf32,
             torch.get_float32_matmul_precision())
    torch.backends.cuda.matmul.allow_tf32 = False
    torch.backends.cudnn.allow_tf32 = False
    torch.set_float32_matmul_precision("highest")
    try:
        with contextlib.ExitStack() as stack:
            for device in ("cpu", "cuda"):
                stack.enter_context(torch.autocast(device, enabled=False))
            yield
    finally:
        torch.backends.cuda.matmul.allow_tf32, torch.backends.cudnn.allow_tf32 = saved[:2]
        torch.set_float32_matmul_precision(saved[2])


def margin_bounds(
    bounded: torch.nn.Module,
    x: torch.Tensor,
    labels: torch.Tensor,
    eps: float,
    method: Literal["IBP", "CROWN-IBP", "CROWN"] = "IBP",
) -> tuple[torch.Tensor, torch.Tensor]:
    """``(clean logits, lower bounds of the margins z_y − z_j)`` over the clipped L∞ box.

    The clean forward pass of the bounded tensor comes first and the bounds reuse it (so a
    dropout layer in training mode is bounded with that pass's mask). Every margin bound
    positive means the prediction ``labels`` cannot change in the box (a sound certificate).
    Computed in IEEE fp32 (:func:`ieee_fp32`), whatever the caller's precision settings.
    """
    with ieee_fp32():
        x = x.float()
        clean = bounded(_boxed(x, eps))
        num_classes = clean.shape[1]
        lower, _ = bounded.compute_bounds(method=method, C=margin_matrix(labels, num_classes))
    return clean, lower
