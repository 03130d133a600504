"""Native certificates of the baselines (issue 5, item 3), beside the probabilistic one.

- :func:`smoothing_certify`: Cohen, Rosenfeld & Kolter 2019, Algorithm CERTIFY: n0 noisy copies
  pick the top class c_A, n fresh copies give p_A's one-sided Clopper–Pearson lower bound at
  level 1−α; abstain if it is ≤ 1/2, else certify the L2 radius σ·Φ⁻¹(p_A). Noise N(0, σ²I) in
  [0,1] pixel space, unclipped, as RS trains (``methods/rs.py``).
- :func:`bound_certify`: the deterministic certificate (κ = 0) of an L∞ ball from sound
  auto_LiRPA bounds (IBP or CROWN-IBP): every margin z_y − z_j has a positive lower bound.
"""
from __future__ import annotations

import pandas as pd
import torch

from bench.certification.metrics import rates

__all__ = ["bound_certify", "bound_certify_inputs", "certified_accuracy", "smoothing_certify"]


def _noisy_counts(model: torch.nn.Module, x: torch.Tensor, sigma: float, n: int, num_classes: int,
                  gen: torch.Generator, batch_size: int) -> torch.Tensor:
    counts = torch.zeros(num_classes, dtype=torch.long)
    with torch.inference_mode():
        for start in range(0, n, batch_size):
            m = min(batch_size, n - start)
            batch = x.expand(m, *x.shape[1:])
            noise = torch.randn(batch.shape, generator=gen, device=x.device, dtype=x.dtype)
            pred = model(batch + sigma * noise).argmax(1).cpu()
            counts += torch.bincount(pred, minlength=num_classes)
    return counts


def smoothing_certify(model: torch.nn.Module, images: torch.Tensor, sigma: float, num_classes: int, *,
                      n0: int = 100, n: int = 100_000, alpha: float = 0.001, batch_size: int = 1000,
                      seed: int = 0) -> pd.DataFrame:
    """Cohen et al.'s CERTIFY for each image: columns ``prediction`` (−1: abstain), ``p_a_lower``,
    ``radius`` (L2, pixel units of [0,1]; 0 when abstaining)."""
    from scipy.stats import beta, norm

    model.eval()
    gen = torch.Generator(device=images.device).manual_seed(seed)
    rows = []
    for i in range(len(images)):
        x = images[i : i + 1]
        c_a = int(_noisy_counts(model, x, sigma, n0, num_classes, gen, batch_size).argmax())
        k = int(_noisy_counts(model, x, sigma, n, num_classes, gen, batch_size)[c_a])
        p_lower = float(beta.ppf(alpha, k, n - k + 1)) if k > 0 else 0.0
        if p_lower > 0.5:
            rows.append({"prediction": c_a, "p_a_lower": p_lower, "radius": sigma * float(norm.ppf(p_lower))})
        else:
            rows.append({"prediction": -1, "p_a_lower": p_lower, "radius": 0.0})
    return pd.DataFrame(rows)


def certified_accuracy(frame: pd.DataFrame, labels: torch.Tensor, radii: list[float]) -> dict[float, float]:
    """Percent of inputs predicted correctly with a certified radius ≥ r, for each r."""
    correct = frame["prediction"].to_numpy() == labels.cpu().numpy()
    return {float(r): 100.0 * float((correct & (frame["radius"].to_numpy() >= r)).mean()) for r in radii}


def bound_certify_inputs(model: torch.nn.Module, images: torch.Tensor, labels: torch.Tensor, eps: float,
                         method: str = "IBP", batch_size: int = 64) -> pd.DataFrame:
    """Deterministic L∞ certificate (κ = 0) of the clean prediction from auto_LiRPA bounds, per input.

    ``eps`` in pixel units of [0,1]. One row per input in the form of
    :meth:`bench.certification.engine.CertifyResult.frame` (``outcome`` is ``certified`` when every margin
    z_pred − z_j has a positive lower bound, else ``not_certified``; ``samples`` is 0).
    """
    from bench.models.lirpa import bounded_model, margin_bounds

    model.eval()
    bounded = bounded_model(model, images[:2])
    bounded.eval()
    certified, preds = [], []
    for s in range(0, len(images), batch_size):
        x = images[s : s + batch_size]
        with torch.no_grad():
            pred = model(x).argmax(1)
        _, lb = margin_bounds(bounded, x, pred, eps, method)
        certified.append((lb > 0).all(1).cpu())
        preds.append(pred.cpu())
    certified, pred = torch.cat(certified).numpy(), torch.cat(preds).numpy()
    return pd.DataFrame({"label": labels.cpu().numpy(), "clean_prediction": pred, "input": range(len(pred)),
                         "prediction": pred, "samples": 0,
                         "outcome": ["certified" if c else "not_certified" for c in certified]})


def bound_certify(model: torch.nn.Module, images: torch.Tensor, labels: torch.Tensor, eps: float,
                  method: str = "IBP", batch_size: int = 64) -> dict[str, float]:
    """Deterministic L∞ certificate (κ = 0) of the clean prediction from auto_LiRPA bounds
    (:func:`bound_certify_inputs`): standard accuracy, certified robustness rate and certified
    robust accuracy in percent."""
    return rates(bound_certify_inputs(model, images, labels, eps, method, batch_size))
