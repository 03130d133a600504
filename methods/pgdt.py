"""PGDT: PGD adversarial training (Madry et al. 2018).

Loss: cross-entropy on x' = PGD(x), an L∞ attack with a uniform random start, run with the
model in eval mode (torchattacks' default). Madry et al.'s settings: eps 0.3, 40 steps of 0.01
on MNIST-shaped data; eps 8/255, 10 steps of 2/255 on SVHN and CIFAR (eps in pixel units).
"""
import torch.nn.functional as F
import torchattacks

from bench.method import LossOutput, Method, register_method

LINF_ATTACK = {"28x28": {"eps": 0.3, "step_size": 0.01, "steps": 40},
               "32x32": {"eps": 8 / 255, "step_size": 2 / 255, "steps": 10}}


@register_method
class PGDT(Method):
    key = "pgdt"
    name = "PGDT"
    citation = "Madry et al., Towards deep learning models resistant to adversarial attacks, ICLR 2018"
    architectures = ("resnet18", "wrn8", "convnet")
    defaults = LINF_ATTACK

    def prepare(self, model, example):
        h = self.hparams
        self.attack = torchattacks.PGD(model, eps=h["eps"], alpha=h["step_size"], steps=int(h["steps"]),
                                       random_start=True)
        return model

    def adversarial(self, model, images, labels):
        return self.attack(images, labels)

    def loss(self, model, images, labels):
        logits = model(self.adversarial(model, images, labels))
        return LossOutput(F.cross_entropy(logits, labels), logits)
