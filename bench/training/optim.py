"""The paper's optimisers and schedules (Appendix C.1), the default of every method that does not
declare its own (:meth:`bench.training.method.Method.optimizer`).

A module of its own so that a job's code stamp (:mod:`bench.workflow.provenance`) separates it from the
training loop: evaluation jobs import the method classes, and with them this default.
"""
from __future__ import annotations

import torch
import torch.nn as nn

from bench.data import DatasetInfo

__all__ = ["make_optimizer"]


def make_optimizer(model: nn.Module, arch: str, info: DatasetInfo):
    """Appendix C.1: Adadelta (lr 1.0) for the Basic ConvNet on 28×28 data; otherwise SGD
    (lr 0.01, weight decay 3.5e-3) with the rate divided by 10 at epochs 55, 75 and 90, and
    momentum 0.9, on which the paper is silent: the authors' training script sets it
    (``experiments/e3.py``: ``'momentum':0.9``, as do their logged runs in
    ``checkpoints/configs.json`` and advbench's ``sgd_momentum``, where the recipe comes from).

    Returns ``(optimizer, scheduler)``; the scheduler steps once per epoch.
    """
    if arch == "convnet" and info.image_size == 28:
        opt = torch.optim.Adadelta(model.parameters(), lr=1.0)
        return opt, torch.optim.lr_scheduler.MultiStepLR(opt, milestones=[], gamma=1.0)
    opt = torch.optim.SGD(model.parameters(), lr=0.01, momentum=0.9, weight_decay=3.5e-3)
    return opt, torch.optim.lr_scheduler.MultiStepLR(opt, milestones=[55, 75, 90], gamma=0.1)
