"""MART (Wang et al. 2020): misclassification-aware adversarial training.

Loss, as MART's ``mart_loss``: the boosted cross-entropy on x' (CE plus −log(1 − p_{y'}(x')) for
the most likely wrong class y') + β·KL(f(x) ‖ f(x'))·(1 − f_y(x)), β = 5 (MART's ResNet-18 script,
the paper's architecture; its WideResNet script uses 6; MART has no MNIST script). x' is found by PGD on
the cross-entropy (torchattacks' PGD, in eval mode); MART starts it at x + 0.001·N(0, I),
torchattacks at a uniform point of the box. Attack settings: ``methods/_adversarial.py``.
"""
import torch
import torch.nn.functional as F
import torchattacks

from bench.training import LossOutput, Range, register_method
from methods._adversarial import LINF_ATTACK, LINF_RANGES, LINF_SOURCES, AdversarialMethod


@register_method
class MART(AdversarialMethod):
    key = "mart"
    name = "MART"
    citation = "Wang et al., Improving adversarial robustness requires revisiting misclassified examples, ICLR 2020"
    architectures = ("resnet18", "wrn8", "convnet")
    defaults = {"all": {"beta": 5.0}, **LINF_ATTACK}
    ranges = {"beta": Range.at_least(0), **LINF_RANGES}
    sources = {"beta": "YisenWang/MART train_resnet.py --beta default=5.0 (ResNet-18; train_wideresnet.py has 6.0); "
                       "28x28: no MART script, advbench hparams_registry mart_beta 5.0", **LINF_SOURCES}
    attack_class = torchattacks.PGD
    attack_options = {"random_start": True}

    def loss(self, model, images, labels):
        adv = self.adversarial(model, images, labels)
        logits, logits_adv = model(images), model(adv)
        adv_probs = F.softmax(logits_adv, 1)
        top2 = adv_probs.argsort(1)[:, -2:]
        wrong = torch.where(top2[:, -1] == labels, top2[:, -2], top2[:, -1])
        boosted = F.cross_entropy(logits_adv, labels) + F.nll_loss(torch.log(1.0001 - adv_probs + 1e-12), wrong)
        nat_probs = F.softmax(logits, 1)
        true_probs = nat_probs.gather(1, labels.unsqueeze(1)).squeeze(1)
        kl = F.kl_div(torch.log(adv_probs + 1e-12), nat_probs, reduction="none").sum(1)
        robust = (kl * (1.0000001 - true_probs)).mean()
        loss = boosted + float(self.hparams["beta"]) * robust
        return LossOutput(loss, logits, labels, {"boosted": boosted.detach(), "robust": robust.detach()})
