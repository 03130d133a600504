"""PRL: probabilistically robust learning (Robey et al. 2022), the CVaR objective.

Per input, M draws t_j ~ U(B(x)) and their cross-entropies ℓ_j; the loss is the conditional
value at risk CVaR_β(ℓ) = min_t { t + mean_j relu(ℓ_j − t) / β } (Rockafellar & Uryasev), the
mean of the worst β-fraction of the losses, averaged over the batch. β = 0.05 and M = 50 draws
plus the clean input in the set of losses, as the paper's authors wrote PRL: their ``prl_step``
(``steps.py``) takes ``torch.quantile(loss, threshold, dim=1)`` over the clean input and its
``num`` = 50 draws, and every logged config has ``threshold`` 0.95 (``checkpoints/configs.json``;
none of those runs is a PRL run, see below).

By default (``t_steps`` = 0) t is one order statistic of the M losses, taken in one step:
``torch.quantile(ℓ, 1 − β, interpolation="lower")``, the ⌊(M−1)(1−β)⌋ + 1-th smallest, i.e.
with M = 51 losses (50 draws and the clean input) and β = 0.05 the 48th smallest (index
⌊50 · 0.95⌋ = 47), the 4th largest. The exact minimiser of t + mean relu(ℓ_j − t)/β is the
⌈M(1−β)⌉-th smallest, the 49th of 51 (only 2 losses lie above it, and 2 < βM = 2.55); the two
agree when βM is a whole number (β = 0.05 with M = 20, 40, 60), not at M = 51.

Which one is a decision, and its source is thin. The paper's authors' ``prl_step`` (``steps.py``)
detaches ``torch.quantile(loss, 0.95)`` per image (linear interpolation: the midpoint of the
48th and 49th) and minimises mean relu(ℓ − t)/β; as published it subtracts t along the wrong
axis (their own comment on it reads "dimension problem"; it fails at their batch sizes), and no
run logged in ``checkpoints/configs.json`` uses it (115 ``our_step``, 57 ``trades_step``, 50
``ordinary_step``, 14 ``rand_step``). We follow its evident intent, a threshold per image. t
carries no gradient there or here, so the step's gradient is Σ ∇ℓ_j/(Mβ) over the losses above
t: the 3 largest of 51 under the authors' midpoint and under the 48th alike (they can differ
only where rounding puts the midpoint exactly on the 49th), 2 under the exact minimiser. The
48th thus gives exactly the gradient the authors' step was written to give (the loss value
differs, by the t it adds and the relu term at another t). Neither is the gradient of CVaR as
the mean of the worst βM = 2.55 losses (weights 1/2.55 on the 2 largest and 0.55/2.55 on the
49th): the 48th weights the 49th fully, the 49th not at all; the 48th is the closer.
``tests/test_methods.py`` asserts that the gradient equals the authors' formulation (per image)
and differs from the 49th's. advbench's ``CVaR_SGD`` instead starts t at 1 and takes
``t_steps`` subgradient steps of ``t_step_size`` (its registry: 5 steps of 0.05, with β = 3
and M = 10); set ``t_steps`` > 0 for that.

Either way t is one threshold per image (advbench: ``ts`` of size ``imgs.size(0)``), found from
that image's M losses alone; the batch enters only through the 1/N of advbench's step on t (the
gradient of the batch mean). So under a memory budget the batch runs in chunks of whole images
(:class:`bench.training.method.VicinalMethod`), each with all M draws of its images, and the step uses
the whole batch's N, not the chunk's.
"""
import torch
import torch.nn.functional as F

from bench.training import ImageLosses, Range, VicinalMethod, register_method


def cvar_threshold(losses: torch.Tensor, beta: float) -> torch.Tensor:
    """Per row, the lower (1−β)-quantile of the losses: the ⌊(M−1)(1−β)⌋ + 1-th smallest of M
    (the 48th of 51 at β = 0.05, whose gradient is the authors' prl_step's: module docstring).
    It minimises t + mean relu(ℓ − t)/β only where that equals the ⌈M(1−β)⌉-th smallest (βM a
    whole number, say); at M = 51 the minimiser is the 49th."""
    return torch.quantile(losses, 1.0 - beta, dim=1, interpolation="lower")


@register_method
class PRL(VicinalMethod):
    key = "prl"
    name = "PRL"
    citation = "Robey et al., Probabilistically robust learning: balancing average and worst-case performance, ICML 2022"
    architectures = ("resnet18", "wrn8", "cifar_resnet110", "cnn7", "convnet")
    defaults = {"all": {"n_samples": 50, "beta": 0.05, "include_clean": True, "t_steps": 0, "t_step_size": 0.05}}
    # β is the tail fraction of CVaR_β: the loss divides by it, and the threshold is the (1 − β)-quantile
    ranges = {"n_samples": Range.count(1), "beta": Range.between(0, 1, low_open=True), "include_clean": Range.flag(),
              "t_steps": Range.count(0), "t_step_size": Range.above(0)}
    sources = {
        "n_samples": "authors' code: experiments/e1.py, e2.py, e3.py 'num':50 (PRL's own advbench: cvar_sgd_M 20)",
        "beta": "authors' code: steps.py prl_step's kw threshold, 0.95 in every config of checkpoints/configs.json "
                "(none of which runs prl_step; advbench's cvar_sgd_beta changed 0.05 -> 3.0 -> 0.5 over time)",
        "include_clean": "authors' code: sampling.py prepends the clean x to its draws; steps.py prl_step takes the "
                         "quantile over num + 1 losses",
        "t_steps": "0: the exact quantile, as the authors' steps.py (torch.quantile); advbench CVaR_SGD: 5 steps",
        "t_step_size": "advbench hparams_registry cvar_sgd_t_step_size (used only when t_steps > 0)",
    }

    def inputs_per_image(self) -> int:
        return self.draws() + int(bool(self.hparams["include_clean"]))

    def threshold(self, losses: torch.Tensor, batch_size: int) -> torch.Tensor:
        """t per row of the detached losses (N'×M): the exact quantile, or advbench CVaR_SGD's
        ``t_steps`` steps from 1 on the batch mean, whose gradient in t_i carries 1/``batch_size``."""
        beta = float(self.hparams["beta"])
        if int(self.hparams["t_steps"]) <= 0:
            return cvar_threshold(losses, beta)
        t = torch.ones(len(losses), device=losses.device, dtype=losses.dtype)
        for _ in range(int(self.hparams["t_steps"])):
            above = (losses > t.unsqueeze(1)).to(losses.dtype).mean(1)
            t = t - float(self.hparams["t_step_size"]) * (1 - above / beta) / batch_size
        return t

    def image_losses(self, model, images, labels, samples, batch_size):
        if self.hparams["include_clean"]:
            samples = torch.cat([images.unsqueeze(1), samples], 1)
        N, M = samples.shape[:2]
        beta = float(self.hparams["beta"])
        targets = labels.repeat_interleave(M)
        logits = model(samples.flatten(0, 1))
        losses = F.cross_entropy(logits, targets, reduction="none").view(N, M)
        detached = losses.detach()
        t = self.threshold(detached, batch_size)
        cvar = t + F.relu(losses - t.unsqueeze(1)).mean(1) / beta
        return ImageLosses(cvar, {"plain": detached.mean(1), "threshold": t}, logits, targets)
