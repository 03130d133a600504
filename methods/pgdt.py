"""PGDT: PGD adversarial training (Madry et al. 2018).

Loss: cross-entropy on x' = PGD(x), an L∞ attack on the cross-entropy with a uniform random
start (torchattacks' PGD). Attack settings: ``methods/_adversarial.py``.
"""
import torch.nn.functional as F
import torchattacks

from bench.training import LossOutput, register_method
from methods._adversarial import LINF_ATTACK, LINF_RANGES, LINF_SOURCES, AdversarialMethod


@register_method
class PGDT(AdversarialMethod):
    key = "pgdt"
    name = "PGDT"
    citation = "Madry et al., Towards deep learning models resistant to adversarial attacks, ICLR 2018"
    architectures = ("resnet18", "wrn8", "convnet")
    defaults = LINF_ATTACK
    ranges = LINF_RANGES
    sources = LINF_SOURCES
    attack_class = torchattacks.PGD
    attack_options = {"random_start": True}

    def loss(self, model, images, labels):
        logits = model(self.adversarial(model, images, labels))
        return LossOutput(F.cross_entropy(logits, labels), logits)
