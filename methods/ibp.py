"""IBP: certified training with interval bound propagation (Shi et al. 2021), via auto_LiRPA.

Follows Shi et al.'s Fast-Certified-Robust-Training code (``--method fast``):

- loss: cross-entropy of the worst-case margins, CE([0, −lb(z_y − z_j)]_j, 0), with the lower
  bounds lb from IBP over the L∞ box of radius eps_t (clipped to [0,1]);
- eps_t: auto_LiRPA's ``SmoothedScheduler`` (exponential then linear) from 0 up to ``eps``
  over ``ramp_epochs`` epochs starting at epoch ``ramp_start``, with the learning rate ×0.2 at
  ``lr_milestones``: Shi et al.'s two commands (their README), MNIST: eps 0.4, start 1, ramp 20,
  milestones 50, 60 of 70 epochs; CIFAR: eps 8/255, start 2, ramp 80, milestones 120, 140 of
  160 epochs. A run of E epochs stretches the schedule: the ramp length and the milestones are
  scaled by E / ``schedule_epochs`` (70 or 160) and rounded, so that on the paper's 150 epochs
  (CIFAR: ramp 75, milestones 112, 131) the rate is decayed only after eps has reached its
  target, as in theirs (the start epoch is kept);
- initialisation: weights of every layer but the last ~ N(0, (√(2π)/fan_in)²), and the weights
  of layers fed by a residual addition halved (their ``ibp_init``);
- warm-up regularisers: tightness and ReLU balance (their ``compute_reg``, tol 0.5), weighted
  reg_lambda·(1 − eps_t/eps) with reg_lambda 0.5, while eps_t ramps up;
- Adam, learning rate 5e-4, gradient norm clipped at 10; batch 256 on MNIST, 128 on CIFAR
  (their ``config/mnist.json``, ``config/cifar.json``). BatchNorm after every layer is part of
  the architectures IBP trains here (``cnn7``, ``wrn8``; ``convnet`` has none).

The tightness regulariser's reference ``tightness_0`` is the bound width at Shi et al.'s input
node, which holds *normalised* images (their loader normalises, so its width is eps/std): here
the model normalises inside (``bench.models.Normalize``), so the reference is the raw input's
width divided by the dataset's std.
"""
from __future__ import annotations

import math

import torch
import torch.nn.functional as F

from bench.models.lirpa import auto_lirpa, bounded_model, margin_bounds
from bench.training import LossOutput, Method, Range, register_method


@register_method
class IBP(Method):
    key = "ibp"
    name = "IBP"
    citation = "Shi et al., Fast certified robust training with short warmup, NeurIPS 2021"
    architectures = ("wrn8", "cnn7", "convnet")
    native_certificate = "bounds"
    schedule_scales_with_epochs = True  # Shi et al.'s schedule, scaled by epochs / schedule_epochs
    defaults = {
        # Shi et al.'s MNIST schedule unless the shape has its own
        "all": {"reg_lambda": 0.5, "tol": 0.5, "lr": 5e-4, "grad_clip": 10.0, "bound": "IBP",
                "ramp_start": 1, "ramp_epochs": 20, "lr_milestones": [50, 60], "schedule_epochs": 70},
        "28x28": {"eps": 0.4},
        "fashion_mnist": {"eps": 0.1},
        "32x32": {"eps": 8 / 255, "ramp_start": 2, "ramp_epochs": 80, "lr_milestones": [120, 140],
                  "schedule_epochs": 160},
    }
    ranges = {
        "eps": Range.above(0),  # not 0: the regularisers' weight 1 − eps_t/eps divides by it
        "reg_lambda": Range.at_least(0),
        "tol": Range.above(0),  # the regularisers divide by it
        "lr": Range.above(0),
        "grad_clip": Range.above(0, finite=False),  # inf: no clipping
        "bound": Range.one_of("IBP", "CROWN-IBP", "CROWN"),  # the bounds bench.models.lirpa.margin_bounds computes
        "ramp_start": Range.count(1),  # a 1-based epoch, as Shi et al.'s
        "ramp_epochs": Range.count(1),
        "lr_milestones": Range.count(1, each=True),
        "schedule_epochs": Range.count(1),  # the schedule is scaled by epochs / schedule_epochs
    }
    batch_size = {"28x28": 256, "32x32": 128}
    sources = {
        "reg_lambda": "shizhouxing/Fast-Certified-Robust-Training argparser.py --reg-lambda default=0.5",
        "tol": "argparser.py --tol default=0.5",
        "optimizer": "argparser.py --opt default='Adam'",
        "lr": "argparser.py --lr default=5e-4",
        "weight_decay": "argparser.py --weight-decay default=0",
        "lr_schedule": "README commands: x0.2 (--lr-decay-factor default=0.2) at --lr-decay-milestones, scaled by "
                       "epochs / schedule_epochs",
        "grad_clip": "argparser.py --grad-norm default=10.0",
        "bound": "argparser.py --method fast: IBP bounds",
        "eps": "28x28: config/mnist.json 'eps': 0.4; 32x32: config/cifar.json 'eps': 0.03137; Fashion-MNIST: "
               "0.1, CROWN-IBP (huanzhang12/CROWN-IBP) config/fashion-mnist_crown.json training 'epsilon': 0.1",
        "ramp_start": "README commands: --scheduler_opts=start=1 (MNIST), start=2 (CIFAR)",
        "ramp_epochs": "README commands: length=20 (MNIST), length=80 (CIFAR); scaled by epochs / schedule_epochs",
        "lr_milestones": "README commands: --lr-decay-milestones=50,60 (MNIST), 120,140 (CIFAR); scaled likewise",
        "schedule_epochs": "README commands: --num-epochs=70 (MNIST), 160 (CIFAR)",
        "batch_size": "config/mnist.json 'batch_size': 256; config/cifar.json 'batch_size': 128",
    }

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        auto_lirpa()
        from auto_LiRPA.eps_scheduler import SmoothedScheduler

        self.schedule = SmoothedScheduler(float(self.hparams["eps"]), "start=1,length=1")  # set per run below

    def scaled(self, epochs: int) -> int:
        """An epoch count of Shi et al.'s schedule (``schedule_epochs`` long) in a run of ``self.epochs``."""
        return max(1, round(epochs * self.epochs / int(self.hparams["schedule_epochs"])))

    def ramp(self) -> tuple[int, int]:
        """(first epoch, length in epochs) of the eps ramp in this run (1-based, as Shi et al.'s)."""
        return int(self.hparams["ramp_start"]), self.scaled(int(self.hparams["ramp_epochs"]))

    def prepare(self, model, example):
        self.bounded = bounded_model(model, example)
        self._share_buffers(model)
        self._ibp_init(model)
        return self.bounded

    def _share_buffers(self, model) -> None:
        """Make the bounded graph's buffers (BatchNorm's running statistics) the model's own.

        auto_LiRPA's BoundedModule clones every buffer (``BoundBuffers``), so the batch statistics
        that training accumulates would stay in the graph and the saved model would keep its
        initial ones (mean 0, variance 1), which is what evaluation in eval mode then uses."""
        from auto_LiRPA.bound_ops import BoundBuffers

        buffers = dict(model.named_buffers())
        for node in self.bounded.modules():
            if isinstance(node, BoundBuffers) and node.ori_name in buffers:
                node._buffers["buffer"] = buffers[node.ori_name]

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
        milestones = [self.scaled(int(m)) for m in self.hparams["lr_milestones"]]
        return opt, torch.optim.lr_scheduler.MultiStepLR(opt, milestones=milestones, gamma=0.2)

    def current_eps(self) -> float:
        """eps_t of the smoothed ramp at this batch (a function of the global batch index).

        A ramp of fewer than 4 batches has no exponential phase (auto_LiRPA's scheduler divides
        by zero there): it is linear.
        """
        step = self.epoch * self.batches_per_epoch + self.batch
        first, epochs = self.ramp()
        start, length = (first - 1) * self.batches_per_epoch, epochs * self.batches_per_epoch
        if int(length * self.schedule.mid_point) == 0:
            return float(self.hparams["eps"]) * min(1.0, max(0.0, (step - start) / max(length, 1)))
        self.schedule.schedule_start, self.schedule.schedule_length = first, epochs
        self.schedule.set_epoch_length(self.batches_per_epoch)
        self.schedule.batch = step
        self.schedule.step_batch()
        return float(self.schedule.get_eps())

    def bounds(self, images: torch.Tensor, labels: torch.Tensor, eps: float):
        """``(clean logits, lower bounds of the margins z_y − z_j)`` (:func:`bench.models.lirpa.margin_bounds`)."""
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

    def tightness_reference(self) -> torch.Tensor:
        """Shi et al.'s ``tightness_0``: the mean half-width of the input bounds of the last bound
        computation, on *normalised* input (their input node holds normalised images; here the
        model's first layer normalises, so the raw width is divided by the dataset's std)."""
        inp = self.bounded[self.bounded.input_name[0]]
        std = torch.tensor(self.info.std, device=inp.upper.device, dtype=inp.upper.dtype).view(1, -1, 1, 1)
        return ((inp.upper - inp.lower) / 2 / std).mean()

    def regularizer(self) -> torch.Tensor:
        """Shi et al.'s tightness and ReLU-balance regularisers over the pre-ReLU bounds."""
        from auto_LiRPA.bound_ops import BoundRelu

        tol = float(self.hparams["tol"])
        tightness_0 = self.tightness_reference()
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
