"""The numeric settings of a job in one place: compute precision and memory format.

A :class:`Precision` says how a model's forward passes run:

- ``dtype="fp32"`` (the default): IEEE single precision throughout, today's behaviour, bit for
  bit. ``"bf16"``: the forward pass runs under :func:`torch.autocast` with ``torch.bfloat16``:
  convolutions and matrix products (the bulk of the arithmetic) take bfloat16 inputs and
  accumulate in fp32, while the ops autocast keeps in fp32 (the cross-entropy, reductions, the
  weights themselves) stay fp32. bfloat16 has fp32's exponent range, so unlike fp16 it needs no
  loss scaling (no GradScaler): gradients do not underflow. Parameters, their gradients and the
  optimiser step stay fp32.
- ``channels_last``: the model's 4-D weights and its 4-D inputs in NHWC memory format, which the
  CPU (oneDNN) and CUDA (cuDNN) convolution kernels prefer; the numbers are the same up to the
  rounding order of the convolution kernel chosen.

Measured on this project's 2-core CPU (``benchmarks/precision.py``, ``reports/bench/precision.csv``).

What never runs at reduced precision: sound bounds (:mod:`bench.models.lirpa`, :mod:`bench.evaluation.native`) are
IEEE fp32 and must not be called inside :func:`autocast`: a bound computed in bfloat16 is not a
bound. The training loop refuses ``bf16`` for a method whose loss computes such bounds.

Use::

    p = Precision.of("bf16", channels_last=True)
    model = prepare_model(model, p)
    with autocast(device, p):
        logits = model(prepare_input(images, p))
"""
from __future__ import annotations

import contextlib
from collections.abc import Iterator
from dataclasses import dataclass

import torch
import torch.nn as nn

__all__ = ["AtPrecision", "DTYPES", "FP32", "Precision", "autocast", "configure_backends", "prepare_input",
           "prepare_model"]

#: precision name -> the dtype autocast runs the forward pass in (None: no autocast, plain fp32)
DTYPES: dict[str, torch.dtype | None] = {"fp32": None, "bf16": torch.bfloat16}

#: device types whose autocast supports bfloat16
_AUTOCAST_DEVICES = ("cpu", "cuda")


@dataclass(frozen=True)
class Precision:
    """How a job's forward passes run: ``dtype`` (``"fp32"`` or ``"bf16"``) and ``channels_last``."""

    dtype: str = "fp32"
    channels_last: bool = False

    def __post_init__(self) -> None:
        if self.dtype not in DTYPES:
            raise ValueError(f"precision = {self.dtype!r} is not known; allowed: {', '.join(DTYPES)}")
        if not isinstance(self.channels_last, bool):
            raise ValueError(f"channels_last = {self.channels_last!r} must be True or False")

    @classmethod
    def of(cls, value: "Precision | str | None" = None, channels_last: bool | None = None) -> "Precision":
        """A Precision from a name (``"fp32"``, ``"bf16"``), an existing Precision or None (fp32);
        ``channels_last``, if given, overrides the one of ``value``."""
        if value is None:
            value = cls()
        elif isinstance(value, str):
            value = cls(value)
        elif not isinstance(value, cls):
            raise TypeError(f"precision must be a name ({', '.join(DTYPES)}) or a Precision, got {value!r}")
        if channels_last is not None and channels_last != value.channels_last:
            value = cls(value.dtype, channels_last)
        return value

    @property
    def autocast_dtype(self) -> torch.dtype | None:
        """The dtype of autocast's reduced-precision ops; None for fp32 (no autocast)."""
        return DTYPES[self.dtype]

    @property
    def reduced(self) -> bool:
        """True when forward passes run in a dtype narrower than fp32."""
        return self.autocast_dtype is not None


#: today's behaviour: plain fp32, contiguous (NCHW) tensors
FP32 = Precision()


@contextlib.contextmanager
def autocast(device: torch.device | str, precision: "Precision | str | None") -> Iterator[None]:
    """Run the enclosed forward passes at ``precision`` on ``device``.

    fp32: nothing at all happens (no autocast context is entered, so the code inside runs
    exactly as without this wrapper). bf16: ``torch.autocast(device.type, dtype=bfloat16)``,
    on the CPU (AVX512-BF16/AMX make it fast there) or CUDA; another device type is refused.

    Only forward passes belong inside: call ``backward()`` and the optimiser step outside (the
    backward pass runs each op in the dtype its forward used anyway; PyTorch advises against
    backward under autocast). Never wrap sound bound computations (:mod:`bench.models.lirpa`).
    """
    p = Precision.of(precision)
    if not p.reduced:
        yield
        return
    kind = torch.device(device).type
    if kind not in _AUTOCAST_DEVICES:
        raise ValueError(f"precision {p.dtype!r} needs autocast, which this project supports on "
                         f"{' and '.join(_AUTOCAST_DEVICES)}, not on device type {kind!r}; use fp32 there")
    with torch.autocast(device_type=kind, dtype=p.autocast_dtype):
        yield


def prepare_model(model: nn.Module, precision: "Precision | str | None") -> nn.Module:
    """``model`` ready for ``precision``: converted in place to channels_last memory format when
    asked (4-D weights become NHWC; the values are unchanged), else untouched. Returns it.

    The weights stay fp32 in every case: autocast casts them per op, and the optimiser updates
    the fp32 copy, so nothing is lost between steps. Saved state is made contiguous on writing
    (:mod:`bench.models.checkpoint`), so files do not depend on this setting.
    """
    if Precision.of(precision).channels_last:
        model.to(memory_format=torch.channels_last)
    return model


def prepare_input(x: torch.Tensor, precision: "Precision | str | None") -> torch.Tensor:
    """A batch ready for ``precision``: a 4-D batch in channels_last format when asked (a copy
    in NHWC order; same values), else ``x`` itself. Inputs stay fp32: autocast casts them."""
    if Precision.of(precision).channels_last and x.ndim == 4:
        return x.contiguous(memory_format=torch.channels_last)
    return x


class AtPrecision(nn.Module):
    """``model`` whose forward runs at ``precision`` (autocast, channels_last inputs) and returns
    fp32 logits. Evaluation jobs certify, attack and audit this one module, so that every
    number of a table about a model comes from one precision (an attack never runs in a lower
    precision than the certificate it is compared with). Sound bounds take the bare model.
    """

    def __init__(self, model: nn.Module, precision: "Precision | str | None"):
        super().__init__()
        self.precision = Precision.of(precision)
        self.model = prepare_model(model, self.precision)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        with autocast(x.device, self.precision):
            out = self.model(prepare_input(x, self.precision))
        return out.float()


def configure_backends(device: torch.device | str, train: bool) -> None:
    """Backend switches for a job on ``device``.

    CUDA training: ``cudnn.benchmark = True``: cuDNN times its convolution algorithms on the
    first batch of each shape and keeps the fastest; training sees a handful of shapes (the batch
    and the last, shorter batch), so the search pays off. It is left off for inference:
    certification forwards batches of ever-changing size (its rounds), each of which would
    trigger a new search. The CPU has no such switch; nothing is changed there.

    TF32 is left at PyTorch's defaults: this function does not change what fp32 means.
    """
    if torch.device(device).type == "cuda" and train:
        torch.backends.cudnn.benchmark = True
