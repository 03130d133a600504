"""The five architectures of the paper's Table 5, by name, each with its input normalisation.

``create_model(name, info)`` builds one for a dataset (:class:`bench.data.DatasetInfo`). Every
model starts with a :class:`Normalize` layer holding that dataset's mean and std, so that models
take raw [0,1] images and every eps is in pixel units.

Each builder follows the code of the work the paper cites for it:

- ``resnet18``: the CIFAR ResNet-18 of TRADES/MART/advbench (3×3 stem, no max-pool).
- ``wrn8``: Wide-ResNet-8 of Shi et al. 2021 (Fast-Certified-Robust-Training,
  ``wide_resnet_8``: widen factor 8, one block per stage, BatchNorm, dense 512 head, no pooling).
- ``cifar_resnet110``: the CIFAR ResNet-110 of Cohen et al. 2019 (16/32/64 channels, 18 basic
  blocks per stage).
- ``cnn7``: CNN7 of Shi et al. 2021 (``cnn_7layer_bn2``: BatchNorm after every layer).
- ``convnet``: the Basic ConvNet of advbench (Robey et al. 2022), the PyTorch MNIST example
  network (two 3×3 convolutions, max-pool, dropout, 128-unit dense layer).

Their ``nn.ReLU`` layers work in place, which saves a pass over each activation (the Basic
ConvNet's forward 1.39× faster on one CPU thread, ``benchmarks/inplace_relu.py``); outputs,
gradients and auto_LiRPA bounds are bit-identical to the originals' out-of-place ReLUs
(``tests/test_models.py``).

A new architecture is one decorated builder: ``@register_model("name")``. Any model of timm's
registry is available as ``timm:<name>`` (built from scratch with the dataset's channels and
classes: no weights are downloaded), behind the same :class:`Normalize` layer.
"""
from __future__ import annotations

from collections.abc import Callable, Sequence

import torch
import torch.nn as nn
import torch.nn.functional as F

from bench.data import DatasetInfo
from bench.registry import Registry

__all__ = ["MODELS", "Normalize", "count_parameters", "create_model", "register_model"]

Builder = Callable[[int, int, int], nn.Module]
MODELS: Registry[Builder] = Registry("model", hint=", or timm:<name> for any model of timm's registry")


def register_model(name: str) -> Callable[[Builder], Builder]:
    """Register ``builder(in_channels, image_size, num_classes) -> nn.Module`` under ``name``."""

    def deco(builder: Builder) -> Builder:
        return MODELS.add(name, builder)

    return deco


class Normalize(nn.Module):
    """``(x - mean) / std`` per channel, with the statistics as buffers (saved with the weights)."""

    def __init__(self, mean: Sequence[float], std: Sequence[float]):
        super().__init__()
        self.register_buffer("mean", torch.tensor(mean, dtype=torch.float32).view(1, -1, 1, 1))
        self.register_buffer("std", torch.tensor(std, dtype=torch.float32).view(1, -1, 1, 1))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return (x - self.mean) / self.std


def create_model(name: str, info: DatasetInfo) -> nn.Sequential:
    """Build architecture ``name`` for dataset ``info``: ``Normalize`` then the network.

    Raises ``ValueError`` listing the registered names for an unknown ``name``.
    """
    if name.startswith(("timm:", "timm-")):  # timm:<name>, or timm-<name> as the DAG's paths write it
        return nn.Sequential(Normalize(info.mean, info.std), timm_model(name[len(TIMM):], info))
    builder = MODELS[name]
    net = builder(info.channels, info.image_size, info.num_classes)
    return nn.Sequential(Normalize(info.mean, info.std), net)


#: the prefix of an architecture name taken from timm's registry (``timm:`` or ``timm-``)
TIMM = "timm:"


def timm_model(name: str, info: DatasetInfo) -> nn.Module:
    """timm's model ``name`` for the dataset: ``in_chans`` and ``num_classes`` from ``info``,
    ``img_size`` too for the models that take one (vision transformers), random weights
    (``pretrained=False``: nothing is downloaded)."""
    import timm

    if not timm.is_model(name):
        close = timm.list_models(f"*{name}*")[:10]
        raise ValueError(f"timm has no model '{name}'" + (f"; close: {', '.join(close)}" if close else "")
                         + " (timm.list_models() lists them)")
    kwargs = {"pretrained": False, "num_classes": info.num_classes, "in_chans": info.channels}
    try:
        net = timm.create_model(name, img_size=info.image_size, **kwargs)
    except TypeError:  # a model without an img_size argument (convolutional networks)
        net = timm.create_model(name, **kwargs)
    try:  # one image through it now, so that a shape it cannot take fails here, by name
        with torch.no_grad(), torch.random.fork_rng():
            net.eval()(torch.zeros(1, *info.shape))
    except Exception as err:
        raise ValueError(f"timm model '{name}' cannot take {info.title}'s {'×'.join(map(str, info.shape))} "
                         f"images: {err}") from None
    return net.train()


def count_parameters(model: nn.Module) -> int:
    """Number of trainable parameters (the figure Table 5 reports)."""
    return sum(p.numel() for p in model.parameters() if p.requires_grad)


# --- Basic ConvNet ---------------------------------------------------------------------------


@register_model("convnet")
def convnet(in_channels: int, image_size: int, num_classes: int) -> nn.Module:
    flat = 64 * ((image_size - 4) // 2) ** 2
    return nn.Sequential(
        nn.Conv2d(in_channels, 32, 3, 1), nn.ReLU(inplace=True),
        nn.Conv2d(32, 64, 3, 1), nn.ReLU(inplace=True),
        nn.MaxPool2d(2), nn.Dropout(0.25), nn.Flatten(),
        nn.Linear(flat, 128), nn.ReLU(inplace=True), nn.Dropout(0.5),
        nn.Linear(128, num_classes),
    )


# --- CNN7 ------------------------------------------------------------------------------------


@register_model("cnn7")
def cnn7(in_channels: int, image_size: int, num_classes: int, width: int = 64,
         linear_size: int = 512) -> nn.Module:
    def conv_bn(cin: int, cout: int, stride: int) -> list[nn.Module]:
        return [nn.Conv2d(cin, cout, 3, stride=stride, padding=1), nn.BatchNorm2d(cout), nn.ReLU(inplace=True)]

    w2 = 2 * width
    return nn.Sequential(
        *conv_bn(in_channels, width, 1), *conv_bn(width, width, 1), *conv_bn(width, w2, 2),
        *conv_bn(w2, w2, 1), *conv_bn(w2, w2, 1),
        nn.Flatten(),
        nn.Linear(((image_size + 1) // 2) ** 2 * w2, linear_size), nn.BatchNorm1d(linear_size),
        nn.ReLU(inplace=True), nn.Linear(linear_size, num_classes),
    )


# --- residual blocks shared by the ResNets -------------------------------------------------


class BasicBlock(nn.Module):
    """Two 3×3 conv-BN layers with an identity or 1×1 conv-BN shortcut (He et al. 2016)."""

    def __init__(self, cin: int, cout: int, stride: int = 1, bias: bool = False):
        super().__init__()
        self.conv1 = nn.Conv2d(cin, cout, 3, stride=stride, padding=1, bias=bias)
        self.bn1 = nn.BatchNorm2d(cout)
        self.conv2 = nn.Conv2d(cout, cout, 3, stride=1, padding=1, bias=bias)
        self.bn2 = nn.BatchNorm2d(cout)
        self.shortcut: nn.Module = nn.Identity()
        if stride != 1 or cin != cout:
            self.shortcut = nn.Sequential(
                nn.Conv2d(cin, cout, 1, stride=stride, bias=bias), nn.BatchNorm2d(cout)
            )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = F.relu(self.bn1(self.conv1(x)))
        out = self.bn2(self.conv2(out))
        return F.relu(out + self.shortcut(x))


def _stage(cin: int, cout: int, blocks: int, stride: int, bias: bool = False) -> nn.Sequential:
    layers = [BasicBlock(cin, cout, stride, bias)]
    layers += [BasicBlock(cout, cout, 1, bias) for _ in range(blocks - 1)]
    return nn.Sequential(*layers)


# --- ResNet-18 (CIFAR variant) ---------------------------------------------------------------


@register_model("resnet18")
def resnet18(in_channels: int, image_size: int, num_classes: int) -> nn.Module:
    return nn.Sequential(
        nn.Conv2d(in_channels, 64, 3, 1, 1, bias=False), nn.BatchNorm2d(64), nn.ReLU(inplace=True),
        _stage(64, 64, 2, 1), _stage(64, 128, 2, 2), _stage(128, 256, 2, 2),
        _stage(256, 512, 2, 2),
        nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(512, num_classes),
    )


# --- CIFAR ResNet-110 (Cohen et al. 2019) ----------------------------------------------------


@register_model("cifar_resnet110")
def cifar_resnet110(in_channels: int, image_size: int, num_classes: int,
                    depth: int = 110) -> nn.Module:
    n = (depth - 2) // 6
    net = nn.Sequential(
        nn.Conv2d(in_channels, 16, 3, padding=1, bias=False), nn.BatchNorm2d(16), nn.ReLU(inplace=True),
        _stage(16, 16, n, 1), _stage(16, 32, n, 2), _stage(32, 64, n, 2),
        # AvgPool2d(8) in the original, for 32×32 input; adaptive is the same there.
        nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(64, num_classes),
    )
    for m in net.modules():  # the original's He initialisation (fan-out)
        if isinstance(m, nn.Conv2d):
            nn.init.kaiming_normal_(m.weight, mode="fan_out", nonlinearity="relu")
    return net


# --- Wide-ResNet-8 (Shi et al. 2021) ---------------------------------------------------------


@register_model("wrn8")
def wrn8(in_channels: int, image_size: int, num_classes: int, widen_factor: int = 8,
         base_width: int = 16) -> nn.Module:
    w = base_width * widen_factor
    final = ((image_size + 1) // 2 + 1) // 2
    net = nn.Sequential(
        nn.Conv2d(in_channels, base_width, 3, padding=1), nn.BatchNorm2d(base_width), nn.ReLU(inplace=True),
        _stage(base_width, w, 1, 1, bias=True),
        _stage(w, 2 * w, 1, 2, bias=True),
        _stage(2 * w, 4 * w, 1, 2, bias=True),
        nn.Flatten(),
        nn.Linear(4 * w * final**2, 512), nn.BatchNorm1d(512), nn.ReLU(inplace=True),
        nn.Linear(512, num_classes),
    )
    for m in net.modules():
        if isinstance(m, nn.Conv2d):
            nn.init.kaiming_normal_(m.weight, mode="fan_out", nonlinearity="relu")
    return net
