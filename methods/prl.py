"""PRL: probabilistically robust learning (Robey et al. 2022), the CVaR objective.

Per input, M draws t_j ~ U(B(x)) and their cross-entropies ℓ_j; the loss is the conditional
value at risk CVaR_β(ℓ) = min_t { t + mean_j relu(ℓ_j − t) / β } (Rockafellar & Uryasev), the
mean of the worst β-fraction of the losses, averaged over the batch. M = 20, β = 0.5.

The inner minimum over t is attained at the (1−β)-quantile of the ℓ_j; by default it is solved
exactly on the M losses, as the paper's authors' PRL step does (``torch.quantile``). advbench's
``CVaR_SGD`` instead starts t at 1 and takes ``t_steps`` subgradient steps of ``t_step_size``
(its registry: 5 steps of 0.05, with β = 3 and M = 10); set ``t_steps`` > 0 for that.
"""
import torch
import torch.nn.functional as F

from bench.method import LossOutput, Method, register_method


def cvar_threshold(losses: torch.Tensor, beta: float) -> torch.Tensor:
    """The minimiser t of t + mean relu(ℓ − t)/β per row: the (1−β)-quantile (lower)."""
    return torch.quantile(losses, 1.0 - beta, dim=1, interpolation="lower")


@register_method
class PRL(Method):
    key = "prl"
    name = "PRL"
    citation = "Robey et al., Probabilistically robust learning: balancing average and worst-case performance, ICML 2022"
    architectures = ("resnet18", "wrn8", "cifar_resnet110", "cnn7", "convnet")
    defaults = {"all": {"n_samples": 20, "beta": 0.5, "t_steps": 0, "t_step_size": 0.05}}

    def loss(self, model, images, labels):
        M, beta = int(self.hparams["n_samples"]), float(self.hparams["beta"])
        N = len(labels)
        targets = labels.repeat_interleave(M)
        logits = model(self.samples(images, M))
        losses = F.cross_entropy(logits, targets, reduction="none").view(N, M)
        detached = losses.detach()
        if int(self.hparams["t_steps"]) > 0:
            t = torch.ones(N, device=losses.device)
            for _ in range(int(self.hparams["t_steps"])):  # advbench CVaR_SGD's update of t
                above = (detached > t.unsqueeze(1)).float().mean(1)
                t = t - float(self.hparams["t_step_size"]) * (1 - above / beta) / N
        else:
            t = cvar_threshold(detached, beta)
        cvar = t + F.relu(losses - t.unsqueeze(1)).mean(1) / beta
        return LossOutput(cvar.mean(), logits, targets,
                          {"plain": detached.mean().item(), "threshold": t.mean().item()})
