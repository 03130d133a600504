from __future__ import annotations

import math

import pytest
import torch
from scipy import stats

from bench.certification.vicinity import Geometric, L2Ball, LinfBall, parse_vicinity


def gen(seed=0):
    return torch.Generator().manual_seed(seed)


def test_linf_samples_lie_in_the_box_and_image_range():
    x = torch.rand(4, 3, 8, 8)
    v = parse_vicinity("linf:8/255")
    assert isinstance(v, LinfBall) and v.eps == pytest.approx(8 / 255)
    s = v(x, 50, gen())
    assert s.shape == (4, 50, 3, 8, 8)
    assert (s - x.unsqueeze(1)).abs().max() <= 8 / 255 + 1e-6
    assert s.min() >= 0 and s.max() <= 1


def test_linf_is_uniform_inside_the_box():
    x = torch.full((1, 1, 16, 16), 0.5)
    d = (parse_vicinity("linf:0.1")(x, 200, gen()) - 0.5).flatten().numpy() / 0.1
    assert stats.kstest(d, "uniform", args=(-1, 2)).pvalue > 1e-3


def test_l2_samples_lie_in_the_ball():
    x = torch.rand(3, 1, 10, 10)
    s = parse_vicinity("l2:0.5")(x, 100, gen())
    assert (s - x.unsqueeze(1)).flatten(2).norm(dim=2).max() <= 0.5 + 1e-5
    assert s.min() >= 0 and s.max() <= 1


def test_l2_radius_distribution_is_that_of_a_uniform_ball():
    # uniform in a d-ball: P(r <= t·eps) = t^d, so (r/eps)^d is U[0,1]
    d, eps = 6, 0.05  # mid-grey image, small eps: clipping never acts
    x = torch.full((1, 1, 2, 3), 0.5)
    r = (L2Ball(eps)(x, 4000, gen()) - x.unsqueeze(1)).flatten(2).norm(dim=2).flatten()
    assert stats.kstest((r / eps).pow(d).numpy(), "uniform").pvalue > 1e-3


def test_rotation_by_zero_is_identity_and_90_is_rot90():
    x = torch.rand(2, 3, 9, 9)
    zero = Geometric.matrix(torch.zeros(2), torch.zeros(2, 2), torch.ones(2))
    assert torch.allclose(Geometric.warp(x, zero), x, atol=1e-6)
    quarter = Geometric.matrix(torch.full((2,), math.pi / 2), torch.zeros(2, 2), torch.ones(2))
    assert torch.allclose(Geometric.warp(x, quarter), torch.rot90(x, 1, (-2, -1)), atol=1e-5)
    assert torch.allclose(parse_vicinity("rotate:1e-9")(x, 2, gen())[:, 0], x, atol=1e-5)


def test_translation_moves_content_by_whole_pixels():
    x = torch.zeros(1, 1, 8, 8)
    x[0, 0, 3, 3] = 1.0
    # shift t = +2 pixels in normalised units (2/8·2) moves content to smaller indices
    theta = Geometric.matrix(torch.zeros(1), torch.tensor([[0.5, 0.0]]), torch.ones(1))
    y = Geometric.warp(x, theta)
    assert y[0, 0, 3, 1] == pytest.approx(1.0, abs=1e-5)


def test_geometric_parameters_are_drawn_in_range():
    v = parse_vicinity("affine")
    assert (v.rotate, v.translate, v.scale) == (35.0, 0.3, 0.3)
    theta = v.theta(5000, torch.zeros(1), gen())
    zoom = 1 / theta[:, 0, :2].norm(dim=1)
    assert zoom.min() >= 0.7 - 1e-5 and zoom.max() <= 1.3 + 1e-5
    angle = torch.atan2(theta[:, 1, 0], theta[:, 0, 0]) * 180 / math.pi
    assert angle.abs().max() <= 35 + 1e-4 and angle.abs().max() > 30
    assert theta[:, :, 2].abs().max() <= 0.6 + 1e-6


@pytest.mark.parametrize("spec", ["rotate:35", "translate:0.3", "scale:0.3", "affine",
                                  "affine:rotate=10,translate=0.1,scale=0.2"])
def test_functional_vicinities_keep_shape_and_range(spec):
    x = torch.rand(3, 3, 12, 12)
    s = parse_vicinity(spec)(x, 7, gen())
    assert s.shape == (3, 7, 3, 12, 12) and s.min() >= 0 and s.max() <= 1


def test_samples_are_seeded():
    x = torch.rand(2, 1, 5, 5)
    v = parse_vicinity("affine")
    assert torch.equal(v(x, 3, gen(1)), v(x, 3, gen(1)))
    assert not torch.equal(v(x, 3, gen(1)), v(x, 3, gen(2)))


@pytest.mark.parametrize("spec", ["linf:8/255", "l2:0.5", "affine"])
def test_noise_then_apply_is_the_call_bit_for_bit(spec):
    """SampleTape draws each chunk's noise alone and applies many chunks' at once."""
    x = torch.rand(3, 3, 6, 6)
    v = parse_vicinity(spec)
    whole = v(x, 4, gen(5))
    noise = v.noise(x, 4, gen(5))
    assert torch.equal(v.apply(x, noise), whole)
    # applied to the draws of each image on its own, then to all at once: the same samples
    g = gen(5)
    parts = torch.cat([v.noise(x[i : i + 1], 4, g) for i in range(3)])
    g = gen(5)
    assert torch.equal(v.apply(x, parts),
                       torch.cat([v(x[i : i + 1], 4, g) for i in range(3)]))


@pytest.mark.parametrize("eps", [8 / 255, 0.1, 0.3])
def test_the_linf_box_draws_what_it_drew_before_its_two_phases(eps):
    """The samples of every certificate before f6abb34: U[-eps, eps] by _uniform, plus x, clipped."""
    from bench.certification.vicinity import _uniform

    x = torch.rand(3, 3, 6, 6)
    before = _uniform((3, 4, 3, 6, 6), -eps, eps, x, gen(9)).add_(x.unsqueeze(1)).clamp_(0.0, 1.0)
    assert torch.equal(LinfBall(eps)(x, 4, gen(9)), before)


def test_a_subclass_that_redefines_its_sampler_keeps_its_two_phases_true_to_it():
    """The sample tape draws through noise() and apply(): a subclass that redefines __call__ (or
    flat) must not inherit its parent's, and half a pair is refused."""
    from bench.certification.streams import SampleTape

    class OneSided(LinfBall):  # x + eps·U[0, 1): never below x
        def __call__(self, x, n, generator=None):
            u = torch.rand((x.shape[0], n, *x.shape[1:]), generator=generator)
            return (x.unsqueeze(1) + self.eps * u).clamp(0.0, 1.0)

    x = torch.rand(2, 1, 5, 5) * 0.5
    v, seen = OneSided(0.2), []
    assert torch.equal(v.apply(x, v.noise(x, 3, gen(1))), v(x, 3, gen(1)))
    SampleTape(lambda b: (seen.append(b), torch.zeros(len(b), dtype=torch.long))[1], x, v, batch_size=64,
               seed=0).reader()(torch.arange(2), torch.tensor([40, 40]))
    assert (torch.cat(seen).view(-1, 32, 1, 5, 5) >= x.repeat_interleave(2, 0).unsqueeze(1)).all()

    class Flat(LinfBall):  # only flat redefined: noise() goes through it
        def flat(self, x, n, generator=None):
            return torch.full((len(x) * n, *x.shape[1:]), 0.5)

    assert torch.equal(Flat(0.1).noise(x, 3, gen(1)), torch.full((2, 3, 1, 5, 5), 0.5))
    with pytest.raises(TypeError, match="defines noise without apply"):
        type("HalfPair", (LinfBall,), {"noise": lambda self, x, n, generator=None: x})


@pytest.mark.parametrize("spec,match", [
    ("linf:2", r"linf = 2 is out of range; allowed: eps in \(0, 1\]"),
    ("linf:0", "out of range"),
    ("l2:-1", "out of range"),
    ("rotate:400", r"allowed: degrees in \(0, 180\]"),
    ("scale:1", "out of range"),
    ("gauss:1", "known kinds: linf, l2, rotate, translate, scale, affine"),
    ("linf", "needs a size"),
    ("linf:abc", "not a number"),
    ("affine:spin=3", "expected affine:rotate"),
])
def test_bad_specs_are_refused(spec, match):
    with pytest.raises(ValueError, match=match):
        parse_vicinity(spec)
