"""IBP: certified training with interval bound propagation (Shi et al. 2021), via auto_LiRPA.

Follows Shi et al.'s Fast-Certified-Robust-Training code (``--method fast``):

- loss: cross-entropy of the worst-case margins, CE([0, −lb(z_y − z_j)]_j, 0), with the lower
  bounds lb from IBP over the L∞ box of radius eps_t (clipped to [0,1]);
- eps_t: auto_LiRPA's ``SmoothedScheduler`` (exponential then linear) from 0 up to ``eps``
  over ``ramp_epochs`` epochs starting at epoch ``ramp_start``; MNIST-shaped data: train eps
  0.4 ramped over 20 epochs from epoch 1 (their ``config/mnist.json``), SVHN/CIFAR: 8/255 over
  80 epochs from epoch 2 (their defaults);
- initialisation: weights of every layer but the last ~ N(0, (√(2π)/fan_in)²), and the weights
  of layers fed by a residual addition halved (their ``ibp_init``);
- warm-up regularisers: tightness and ReLU balance (their ``compute_reg``, tol 0.5), weighted
  reg_lambda·(1 − eps_t/eps) with reg_lambda 0.5, while eps_t ramps up;
- Adam, learning rate 5e-4, gradient norm clipped at 10, learning rate ×0.2 at epochs 50 and 60
  (their ``--length 20`` schedule). BatchNorm after every layer is part of the architectures
  IBP trains here (``cnn7``, ``wrn8``; ``convnet`` has none).
"""
from __future__ import annotations

import math

import torch
import torch.nn.functional as F

from bench.lirpa import auto_lirpa, bounded_model, margin_bounds
from bench.method import LossOutput, Method, register_method


@register_method
class IBP(Method):
    key = "ibp"
    name = "IBP"
    citation = "Shi et al., Fast certified robust training with short warmup, NeurIPS 2021"
    architectures = ("wrn8", "cnn7", "convnet")
    native_certificate = "bounds"
    defaults = {
        "all": {"reg_lambda": 0.5, "tol": 0.5, "lr": 5e-4, "grad_clip": 10.0, "bound": "IBP"},
        "28x28": {"eps": 0.4, "ramp_start": 1, "ramp_epochs": 20},
        "32x32": {"eps": 8 / 255, "ramp_start": 2, "ramp_epochs": 80},
    }

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        auto_lirpa()
        from auto_LiRPA.eps_scheduler import SmoothedScheduler

        h = self.hparams
        self.schedule = SmoothedScheduler(
            float(h["eps"]), f"start={int(h['ramp_start'])},length={int(h['ramp_epochs'])}")

    def prepare(self, model, example):
        self.bounded = bounded_model(model, example)
        self._ibp_init(model)
        return self.bounded

    def _ibp_init(self, model) -> None:
        from auto_LiRPA.bound_ops import BoundAdd, BoundConv, BoundLinear

        weights = [p for name, p in model.named_parameters() if "weight" in name and p.ndim > 1]
        for w in weights[:-1]:
            fan_in, _ = torch.nn.init._calculate_fan_in_and_fan_out(w)
            torch.nn.init.normal_(w, mean=0.0, std=math.sqrt(2 * math.pi) / fan_in)
        for node in self.bounded._modules.values():
            if isinstance(node, (BoundConv, BoundLinear)) and node.inputs[0].inputs \
                    and isinstance(node.inputs[0].inputs[0], BoundAdd):
                node.inputs[1].param.data /= 2

    def optimizer(self, model, arch):
        opt = torch.optim.Adam(model.parameters(), lr=float(self.hparams["lr"]))
        return opt, torch.optim.lr_scheduler.MultiStepLR(opt, milestones=[50, 60], gamma=0.2)

    def current_eps(self) -> float:
        """eps_t of the smoothed ramp at this batch (a function of the global batch index).

        A ramp of fewer than 4 batches has no exponential phase (auto_LiRPA's scheduler divides
        by zero there): it is linear.
        """
        step = self.epoch * self.batches_per_epoch + self.batch
        start = (int(self.hparams["ramp_start"]) - 1) * self.batches_per_epoch
        length = int(self.hparams["ramp_epochs"]) * self.batches_per_epoch
        if int(length * self.schedule.mid_point) == 0:
            return float(self.hparams["eps"]) * min(1.0, max(0.0, (step - start) / max(length, 1)))
        self.schedule.set_epoch_length(self.batches_per_epoch)
        self.schedule.batch = step
        self.schedule.step_batch()
        return float(self.schedule.get_eps())

    def bounds(self, images: torch.Tensor, labels: torch.Tensor, eps: float):
        """``(clean logits, lower bounds of the margins z_y − z_j)`` (:func:`bench.lirpa.margin_bounds`)."""
        return margin_bounds(self.bounded, images, labels, eps, self.hparams["bound"])

    def loss(self, model, images, labels):
        eps = self.current_eps()
        logits, lb = self.bounds(images, labels, eps)
        worst = torch.cat([torch.zeros_like(lb[:, :1]), -lb], dim=1)
        robust = F.cross_entropy(worst, torch.zeros_like(labels))
        max_eps = float(self.hparams["eps"])
        intensity = float(self.hparams["reg_lambda"]) * (1.0 - eps / max_eps)
        reg = self.regularizer() if intensity > 0 and eps > 0 else torch.zeros((), device=images.device)
        return LossOutput(robust + intensity * reg, logits.detach(), labels,
                          {"robust": robust.detach(), "reg": reg.detach(), "eps": eps})

    def regularizer(self) -> torch.Tensor:
        """Shi et al.'s tightness and ReLU-balance regularisers over the pre-ReLU bounds."""
        from auto_LiRPA.bound_ops import BoundRelu

        tol = float(self.hparams["tol"])
        inp = self.bounded[self.bounded.input_name[0]]
        tightness_0 = ((inp.upper - inp.lower) / 2).mean()
        loss_tight = loss_relu = torch.zeros((), device=tightness_0.device)
        count = 0
        for node in self.bounded._modules.values():
            if not isinstance(node, BoundRelu):
                continue
            lower, upper = node.inputs[0].lower, node.inputs[0].upper
            center, radius = (upper + lower) / 2, (upper - lower) / 2
            loss_tight = loss_tight + F.relu(tol - tightness_0 / radius.mean().clamp(min=1e-12)) / tol
            active, inactive = (lower > 0).float(), (upper < 0).float()
            mean_ratio = (center * active).mean() / -(center * inactive).mean()
            delta = (center - center.mean()) ** 2
            var_ratio = (delta * active).sum() / (delta * inactive).sum()
            mean_ratio = torch.min(mean_ratio, 1 / mean_ratio.clamp(min=1e-12))
            var_ratio = torch.min(var_ratio, 1 / var_ratio.clamp(min=1e-12))
            relu_term = (F.relu(tol - mean_ratio) + F.relu(tol - var_ratio)) / tol
            if torch.isfinite(relu_term):
                loss_relu = loss_relu + relu_term
            count += 1
        return (loss_tight + loss_relu) / max(count, 1)

    def after_backward(self, model):
        torch.nn.utils.clip_grad_norm_(model.parameters(), float(self.hparams["grad_clip"]))
