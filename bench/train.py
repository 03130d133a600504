"""The training loop: optimisers of the paper's Appendix C.1 and one epoch over in-memory data.

A loss is any ``loss(model, images, labels) -> scalar tensor``; the training methods
(:mod:`methods`) supply theirs.
"""
from __future__ import annotations

import logging
import time
from collections.abc import Callable

import torch
import torch.nn as nn
from tqdm.auto import tqdm

from bench.data import DatasetInfo, Split

log = logging.getLogger(__name__)

__all__ = ["LossFn", "accuracy", "make_optimizer", "resolve_device", "train_epoch"]

LossFn = Callable[[nn.Module, torch.Tensor, torch.Tensor], torch.Tensor]


def resolve_device(device: str | None = None) -> torch.device:
    """``device`` if given, else CUDA when available, else the CPU."""
    if device:
        return torch.device(device)
    return torch.device("cuda" if torch.cuda.is_available() else "cpu")


def make_optimizer(model: nn.Module, arch: str, info: DatasetInfo):
    """Appendix C.1: Adadelta (lr 1.0) for the Basic ConvNet on 28×28 data; otherwise SGD
    (lr 0.01, weight decay 3.5e-3) with the rate divided by 10 at epochs 55, 75 and 90.

    Returns ``(optimizer, scheduler)``; the scheduler steps once per epoch.
    """
    if arch == "convnet" and info.image_size == 28:
        opt = torch.optim.Adadelta(model.parameters(), lr=1.0)
        return opt, torch.optim.lr_scheduler.LambdaLR(opt, lambda epoch: 1.0)
    opt = torch.optim.SGD(model.parameters(), lr=0.01, weight_decay=3.5e-3)
    return opt, torch.optim.lr_scheduler.MultiStepLR(opt, milestones=[55, 75, 90], gamma=0.1)


def train_epoch(
    model: nn.Module,
    split: Split,
    loss_fn: LossFn,
    optimizer: torch.optim.Optimizer,
    batch_size: int,
    generator: torch.Generator,
    progress: bool = True,
    desc: str = "train",
) -> dict[str, float]:
    """One pass over ``split`` in a seeded random order; returns the mean loss and seconds.

    A loss that is NaN or infinite stops the run with the batch index.
    """
    model.train()
    start = time.perf_counter()
    total_loss, seen = 0.0, 0
    n_batches = -(-len(split) // batch_size)
    for images, labels in tqdm(split.batches(batch_size, shuffle=True, generator=generator),
                               total=n_batches, desc=desc, leave=False, disable=not progress):
        optimizer.zero_grad(set_to_none=True)
        loss = loss_fn(model, images, labels)
        if not torch.isfinite(loss):
            raise FloatingPointError(f"{desc}: the loss became {loss.item()} at batch {seen // batch_size}")
        loss.backward()
        optimizer.step()
        total_loss += loss.item() * len(labels)
        seen += len(labels)
    return {"loss": total_loss / seen, "seconds": time.perf_counter() - start}


@torch.inference_mode()
def accuracy(model: nn.Module, split: Split, batch_size: int = 1024) -> float:
    """Standard accuracy in percent: argmax of the logits on the clean images."""
    model.eval()
    correct = sum(int((model(x).argmax(1) == y).sum()) for x, y in split.batches(batch_size))
    return 100.0 * correct / max(1, len(split))
