"""auto_LiRPA 0.3, patched, gives sound bounds on the architectures IBP trains (Table 7)."""
from __future__ import annotations

import pytest
import torch

from bench.data import DATASETS
from bench.models import create_model
from bench.models.lirpa import auto_lirpa, bounded_model, logit_bounds


def test_patched_import_and_parameters():
    lirpa = auto_lirpa()
    model = create_model("convnet", DATASETS["mnist"]).eval()
    bounded = bounded_model(model, torch.rand(1, 1, 28, 28))
    assert isinstance(bounded, lirpa.BoundedModule)
    assert sum(p.numel() for p in bounded.parameters()) > 0  # patch 4: parameters() works


@pytest.mark.parametrize("arch,dataset", [("convnet", "mnist"), ("cnn7", "mnist"), ("wrn8", "cifar10")])
@pytest.mark.parametrize("method", ["IBP", "CROWN-IBP"])
def test_bounds_are_sound(arch, dataset, method):
    torch.manual_seed(0)
    info = DATASETS[dataset]
    model = create_model(arch, info)
    model.train()
    model(torch.rand(16, *info.shape))  # non-trivial BatchNorm statistics
    model.eval()
    x = torch.rand(2, *info.shape)
    eps = 2 / 255
    bounded = bounded_model(model, x)
    lower, upper = logit_bounds(bounded, x, eps, method)
    assert lower.shape == upper.shape == (2, info.num_classes)
    assert torch.all(lower <= upper)
    with torch.no_grad():
        for _ in range(4):
            t = (x + (torch.rand_like(x) * 2 - 1) * eps).clamp(0, 1)
            corners = (x + torch.sign(torch.randn_like(x)) * eps).clamp(0, 1)
            for point in (t, corners):
                logits = model(point)
                assert torch.all(logits >= lower - 1e-4) and torch.all(logits <= upper + 1e-4)


def test_bounds_backpropagate():
    info = DATASETS["mnist"]
    model = create_model("cnn7", info)
    x = torch.rand(4, *info.shape)
    bounded = bounded_model(model, x)
    bounded.train()
    lower, upper = logit_bounds(bounded, x, 0.1, "IBP")
    (upper - lower).sum().backward()
    grads = [p.grad for p in bounded.parameters() if p.requires_grad]
    assert grads and all(g is not None and torch.isfinite(g).all() for g in grads)


def test_sound_bounds_run_in_ieee_fp32_whatever_the_callers_precision(monkeypatch):
    """TF32 convolutions (cuDNN's default on Ampere+), reduced-precision matmuls and autocast are
    all off inside the bound computation, and the caller's settings come back afterwards."""
    from bench.models.lirpa import margin_bounds

    model = create_model("convnet", DATASETS["mnist"]).eval()
    x = torch.rand(2, 1, 28, 28)
    bounded = bounded_model(model, x)
    seen = {}
    real = bounded.compute_bounds

    def spy(*args, **kwargs):
        seen.update(tf32_conv=torch.backends.cudnn.allow_tf32, tf32_matmul=torch.backends.cuda.matmul.allow_tf32,
                    matmul=torch.get_float32_matmul_precision(), autocast=torch.is_autocast_enabled("cpu"))
        return real(*args, **kwargs)

    monkeypatch.setattr(bounded, "compute_bounds", spy)
    before = (torch.backends.cudnn.allow_tf32, torch.get_float32_matmul_precision())
    torch.backends.cudnn.allow_tf32 = True
    torch.set_float32_matmul_precision("medium")
    try:
        with torch.autocast("cpu", dtype=torch.bfloat16):
            _, lower = margin_bounds(bounded, x, torch.zeros(2, dtype=torch.long), 0.01)
        after = (torch.backends.cudnn.allow_tf32, torch.get_float32_matmul_precision())
    finally:
        torch.backends.cudnn.allow_tf32, _ = before
        torch.set_float32_matmul_precision(before[1])
    assert seen == {"tf32_conv": False, "tf32_matmul": False, "matmul": "highest", "autocast": False}
    assert lower.dtype == torch.float32
    assert after == (True, "medium")

