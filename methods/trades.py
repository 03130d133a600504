"""TRADES (Zhang et al. 2019): clean cross-entropy + β·KL(f(x) ‖ f(x')).

x' maximises the KL divergence from the clean prediction by PGD from x + 0.001·N(0, I)
(torchattacks' TPGD, which is TRADES' own attack), in eval mode. The KL term is summed over
classes and averaged over the batch, as TRADES' ``KLDivLoss(size_average=False) / batch_size``.
β = 1 on 28×28 data (TRADES' ``train_trades_mnist.py``), 6 on 32×32 (``train_trades_cifar10.py``).
Attack settings: ``methods/_adversarial.py``.
"""
import torch.nn.functional as F
import torchattacks

from bench.training import LossOutput, Range, register_method
from methods._adversarial import LINF_ATTACK, LINF_RANGES, LINF_SOURCES, AdversarialMethod


@register_method
class TRADES(AdversarialMethod):
    key = "trades"
    name = "TRADES"
    citation = "Zhang et al., Theoretically principled trade-off between robustness and accuracy, ICML 2019"
    architectures = ("resnet18", "wrn8", "convnet")
    defaults = {"all": {"beta": 6.0}, **LINF_ATTACK, "28x28": {**LINF_ATTACK["28x28"], "beta": 1.0}}
    ranges = {"beta": Range.at_least(0), **LINF_RANGES}
    sources = {"beta": "28x28: yaodongyu/TRADES train_trades_mnist.py --beta default=1.0; "
                       "32x32: train_trades_cifar10.py --beta default=6.0", **LINF_SOURCES}
    attack_class = torchattacks.TPGD

    def loss(self, model, images, labels):
        adv = self.adversarial(model, images, labels)
        logits, logits_adv = model(images), model(adv)
        natural = F.cross_entropy(logits, labels)
        robust = F.kl_div(F.log_softmax(logits_adv, 1), F.softmax(logits, 1), reduction="batchmean")
        loss = natural + float(self.hparams["beta"]) * robust
        return LossOutput(loss, logits, labels, {"natural": natural.detach(), "robust": robust.detach()})
