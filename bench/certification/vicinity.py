"""Vicinities B(x): samplers of uniform perturbations around a batch of images.

A vicinity is the set that the paper's training (Algorithm 1, line 7) and certification
(Algorithm 2, line 7) draw from uniformly. Each sampler is a small object built from a spec
string and called as ``sampler(x, n, generator)`` on a batch ``x`` (N×C×H×W, values in [0,1]);
it returns N×n×C×H×W samples on ``x``'s device, in [0,1], drawn in one vectorised call.

Specs (eps in pixel units of [0,1] images; Tables 1, 2, 6 and 10 of the paper):

=================  ===========================================================================
``linf:8/255``     L∞ box: x + U[-eps, eps]^d per pixel, clipped to [0,1]
``l2:0.5``         L2 ball: x + r·u, u uniform on the sphere, r = eps·U^(1/d); clipped to [0,1]
``rotate:35``      rotation by θ ~ U[-35°, 35°] about the image centre
``translate:0.3``  shift by (tx, ty) ~ U[-0.3, 0.3]² of the image size
``scale:0.3``      zoom by s ~ U[1-0.3, 1+0.3]
``affine``         all three at once (defaults 35°, 0.3, 0.3), or
                   ``affine:rotate=35,translate=0.3,scale=0.3``
=================  ===========================================================================

Geometric transforms use one batched ``affine_grid``/``grid_sample`` call (bilinear, zeros
outside the image).
"""
from __future__ import annotations

import math
import re
from abc import ABC, abstractmethod
from dataclasses import dataclass

import torch
import torch.nn.functional as F

__all__ = ["Vicinity", "LinfBall", "L2Ball", "Geometric", "parse_vicinity", "VICINITY_KINDS"]


class Vicinity(ABC):
    """A neighbourhood B(x) from which samples are drawn uniformly."""

    spec: str

    @abstractmethod
    def __call__(
        self, x: torch.Tensor, n: int, generator: torch.Generator | None = None
    ) -> torch.Tensor:
        """Draw ``n`` samples of B(x_i) for each image of ``x``: N×n×C×H×W, values in [0,1]."""

    def flat(self, x: torch.Tensor, n: int, generator: torch.Generator | None = None) -> torch.Tensor:
        """The same samples as a batch of images, (N·n)×C×H×W, the n of each input contiguous."""
        return self(x, n, generator).flatten(0, 1)

    # Two phases of __call__, for callers that draw many small groups of samples from their own
    # seeded generators (bench.certification.streams.SampleTape: one generator per chunk of 32 samples). On a
    # GPU each small call pays a kernel launch, so drawing each group's randomness alone and
    # applying it to all groups at once cuts the launches per group to the generator's own.
    # The default draws the samples themselves (through flat(), so an override of it counts),
    # and apply() returns them.

    def noise(self, x: torch.Tensor, n: int, generator: torch.Generator | None = None) -> torch.Tensor:
        """The random draws of ``n`` samples of each image of ``x``, in the generator order of
        ``__call__``, for :meth:`apply`: ``apply(x, noise(x, n, g))`` equals ``self(x, n, g)``,
        bit for bit. The default is the samples themselves, N×n×C×H×W."""
        return self.flat(x, n, generator).unflatten(0, (x.shape[0], n))

    def apply(self, x: torch.Tensor, noise: torch.Tensor) -> torch.Tensor:
        """N×n×C×H×W samples from images ``x`` (N×C×H×W) and their :meth:`noise` (which it may
        overwrite). Elementwise in the noise, so applying the noise of several draws at once
        gives each draw's samples."""
        return noise

    def __init_subclass__(cls, **kwargs) -> None:
        """Keep a subclass's two phases true to its own sampler: a class that redefines
        ``__call__`` or ``flat`` without ``noise`` and ``apply`` gets the defaults back (so the
        sample tape draws what its own call draws, not what an inherited ``noise`` would), and
        one that redefines only one of ``noise`` and ``apply`` is refused."""
        super().__init_subclass__(**kwargs)
        own = set(vars(cls))
        if len(own & {"noise", "apply"}) == 1:
            raise TypeError(f"{cls.__name__} defines {' '.join(own & {'noise', 'apply'})} without "
                            f"{' '.join({'noise', 'apply'} - own)}: define both, or neither")
        if own & {"__call__", "flat"} and not own & {"noise", "apply"}:
            cls.noise, cls.apply = Vicinity.noise, Vicinity.apply

    def __repr__(self) -> str:
        return f"{type(self).__name__}({self.spec!r})"


def _uniform(shape, low: float, high: float, like: torch.Tensor, generator) -> torch.Tensor:
    u = torch.rand(shape, generator=generator, device=like.device, dtype=like.dtype)
    return u.mul_(high - low).add_(low)


@dataclass(repr=False)
class LinfBall(Vicinity):
    """Uniform in the L∞ box of radius ``eps`` around x, clipped to the image range [0,1]."""

    eps: float
    spec: str = ""

    def __call__(self, x, n, generator=None):
        return self.apply(x, self.noise(x, n, generator))

    def noise(self, x, n, generator=None):
        """U[0, 1) per pixel of each sample: N×n×C×H×W."""
        return torch.rand((x.shape[0], n, *x.shape[1:]), generator=generator, device=x.device, dtype=x.dtype)

    def apply(self, x, noise):
        # the arithmetic of _uniform, then the shift and the clip, in place on the noise
        return noise.mul_(2 * self.eps).add_(-self.eps).add_(x.unsqueeze(1)).clamp_(0.0, 1.0)


@dataclass(repr=False)
class L2Ball(Vicinity):
    """Uniform in the L2 ball of radius ``eps`` around x, then clipped to [0,1].

    Clipping only moves a sample towards x (x is in [0,1]), so samples stay in the ball.
    """

    eps: float
    spec: str = ""

    def __call__(self, x, n, generator=None):
        shape = (x.shape[0], n, *x.shape[1:])
        d = math.prod(x.shape[1:])
        direction = torch.randn(shape, generator=generator, device=x.device, dtype=x.dtype)
        direction = direction / direction.flatten(2).norm(dim=2).clamp_min(1e-12).view(*shape[:2], 1, 1, 1)
        u = torch.rand(shape[:2], generator=generator, device=x.device, dtype=x.dtype)
        radius = self.eps * u.pow(1.0 / d)
        return direction.mul_(radius.view(*shape[:2], 1, 1, 1)).add_(x.unsqueeze(1)).clamp_(0.0, 1.0)


@dataclass(repr=False)
class Geometric(Vicinity):
    """Random rotation (degrees), translation (fraction of size) and scaling (±fraction).

    Each parameter is drawn uniformly in its symmetric range; a zero range disables it. The
    sampled image is ``x`` resampled at ``A·p + t`` for output pixel coordinates ``p`` in
    [-1, 1]², with ``A = R(θ)/s``; so a positive θ turns the content counter-clockwise (as
    ``torch.rot90`` does), s > 1 zooms in, and t shifts the content by -t.
    """

    rotate: float = 0.0
    translate: float = 0.0
    scale: float = 0.0
    spec: str = ""

    def theta(self, count: int, like: torch.Tensor, generator=None) -> torch.Tensor:
        """``count`` random 2×3 sampling matrices in ``affine_grid``'s normalised coordinates."""
        angle = _uniform((count,), -self.rotate, self.rotate, like, generator) * (math.pi / 180)
        shift = _uniform((count, 2), -self.translate, self.translate, like, generator) * 2.0
        zoom = _uniform((count,), 1.0 - self.scale, 1.0 + self.scale, like, generator)
        return self.matrix(angle, shift, zoom)

    @staticmethod
    def matrix(angle: torch.Tensor, shift: torch.Tensor, zoom: torch.Tensor) -> torch.Tensor:
        """2×3 matrices for angles (radians), shifts (normalised units) and zoom factors."""
        cos, sin = torch.cos(angle) / zoom, torch.sin(angle) / zoom
        return torch.stack(
            [torch.stack([cos, -sin, shift[:, 0]], -1), torch.stack([sin, cos, shift[:, 1]], -1)], 1
        )

    @staticmethod
    def warp(images: torch.Tensor, theta: torch.Tensor) -> torch.Tensor:
        """Resample M images (M×C×H×W) with M matrices in one ``grid_sample`` call."""
        grid = F.affine_grid(theta, list(images.shape), align_corners=False)
        return F.grid_sample(images, grid, mode="bilinear", padding_mode="zeros",
                             align_corners=False)

    def __call__(self, x, n, generator=None):
        N = x.shape[0]
        theta = self.theta(N * n, x, generator)
        images = x.unsqueeze(1).expand(N, n, *x.shape[1:]).reshape(N * n, *x.shape[1:])
        return self.warp(images, theta).clamp_(0.0, 1.0).view(N, n, *x.shape[1:])


# --- parsing ---------------------------------------------------------------------------------

VICINITY_KINDS = ("linf", "l2", "rotate", "translate", "scale", "affine")
_RANGES = {
    "linf": (0.0, 1.0, "eps in (0, 1] (pixel units of [0,1] images)"),
    "l2": (0.0, math.inf, "eps > 0 (pixel units of [0,1] images)"),
    "rotate": (0.0, 180.0, "degrees in (0, 180]"),
    "translate": (0.0, 1.0, "fraction of the image size in (0, 1]"),
    "scale": (0.0, 1.0 - 1e-9, "fraction in (0, 1)"),
}
_AFFINE_DEFAULTS = {"rotate": 35.0, "translate": 0.3, "scale": 0.3}


def _number(text: str, spec: str) -> float:
    """A float or a fraction such as ``8/255``."""
    if not re.fullmatch(r"\s*[0-9.eE+-]+(\s*/\s*[0-9.eE+-]+)?\s*", text):
        raise ValueError(f"vicinity '{spec}': '{text}' is not a number (such as 0.3 or 8/255)")
    num, _, den = text.partition("/")
    try:
        value = float(num) / (float(den) if den else 1.0)
    except (ValueError, ZeroDivisionError):
        raise ValueError(f"vicinity '{spec}': '{text}' is not a number (such as 0.3 or 8/255)") from None
    return value


def _checked(kind: str, value: float, spec: str) -> float:
    low, high, allowed = _RANGES[kind]
    if not (low < value <= high) or not math.isfinite(value):
        raise ValueError(f"vicinity '{spec}': {kind} = {value:g} is out of range; allowed: {allowed}")
    return value


def parse_vicinity(spec: str) -> Vicinity:
    """Build a vicinity from its spec string (see the module docstring for the forms)."""
    kind, _, arg = spec.strip().partition(":")
    kind = kind.strip().lower()
    if kind not in VICINITY_KINDS:
        raise ValueError(f"unknown vicinity '{spec}'; known kinds: {', '.join(VICINITY_KINDS)}")
    if kind == "affine":
        params = dict(_AFFINE_DEFAULTS)
        for item in filter(None, (a.strip() for a in arg.split(","))):
            key, sep, val = item.partition("=")
            if not sep or key.strip() not in params:
                raise ValueError(
                    f"vicinity '{spec}': expected affine:rotate=..,translate=..,scale=.., got '{item}'"
                )
            params[key.strip()] = _checked(key.strip(), _number(val, spec), spec)
        return Geometric(**params, spec=spec)
    if not arg:
        raise ValueError(f"vicinity '{spec}' needs a size, such as '{kind}:{'8/255' if kind == 'linf' else '0.3'}'")
    value = _checked(kind, _number(arg, spec), spec)
    if kind == "linf":
        return LinfBall(value, spec=spec)
    if kind == "l2":
        return L2Ball(value, spec=spec)
    return Geometric(**{kind: value}, spec=spec)
