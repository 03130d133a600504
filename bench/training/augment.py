"""Training-time data augmentation of the recipes (never applied at evaluation).

CIFAR-10 and CIFAR-100 training batches get a random crop of the image padded by 4 zero pixels
on each side and a random horizontal flip: the paper's authors' CIFAR pipeline
(``utils/misc.py``: ``RandomCrop(32, padding=4), RandomHorizontalFlip()``), as in the original
TRADES, MART, Cohen et al. and advbench code. SVHN and the 28×28 digit and clothing images get
none, as in the authors' pipeline (digits must not be mirrored). Applied to a batch on its
device, per image, from a seeded generator that the training checkpoint saves.
"""
from __future__ import annotations

import torch
import torch.nn.functional as F

from bench.data import DatasetInfo

__all__ = ["AUGMENTATIONS", "RECIPE", "augment", "crop_flip", "resolve"]

#: each dataset's recipe; a dataset not listed gets none
RECIPE = {"cifar10": "crop4+flip", "cifar100": "crop4+flip"}
AUGMENTATIONS = ("none", "crop4+flip")


def resolve(name: str, info: DatasetInfo) -> str:
    """``recipe`` -> the dataset's augmentation (:data:`RECIPE`, else ``none``); a name of
    :data:`AUGMENTATIONS` as it is; anything else is refused."""
    if name == "recipe":
        return RECIPE.get(info.name, "none")
    if name not in AUGMENTATIONS:
        raise ValueError(f"unknown augmentation {name!r}; known: recipe, {', '.join(AUGMENTATIONS)}")
    return name


def crop_flip(images: torch.Tensor, generator: torch.Generator, padding: int = 4) -> torch.Tensor:
    """Each image (N×C×H×W) cropped at a uniform offset from its zero-padded copy (torchvision's
    ``RandomCrop(size, padding)``) and mirrored left-right with probability 1/2."""
    n, _, h, w = images.shape
    device = images.device
    padded = F.pad(images, (padding, padding, padding, padding))
    dy = torch.randint(0, 2 * padding + 1, (n,), generator=generator, device=device)
    dx = torch.randint(0, 2 * padding + 1, (n,), generator=generator, device=device)
    flip = torch.rand(n, generator=generator, device=device) < 0.5
    rows = (dy[:, None] + torch.arange(h, device=device))[:, None, :, None]  # N×1×H×1
    cols = dx[:, None] + torch.arange(w, device=device)  # N×W
    cols = torch.where(flip[:, None], cols.flip(1), cols)[:, None, None, :]  # N×1×1×W
    batch = torch.arange(n, device=device)[:, None, None, None]
    channel = torch.arange(images.shape[1], device=device)[None, :, None, None]
    return padded[batch, channel, rows, cols]


def augment(name: str, images: torch.Tensor, generator: torch.Generator) -> torch.Tensor:
    """``images`` under augmentation ``name`` (a resolved name of :data:`AUGMENTATIONS`)."""
    if name == "none":
        return images
    return crop_flip(images, generator)
