"""Shared by the adversarial-training methods (PGDT, TRADES, MART): the L∞ attack they train on.

Madry et al.'s settings: eps 0.3, 40 steps of 0.01 on MNIST-shaped data; eps 8/255, 10 steps
of 2/255 on SVHN and CIFAR; on Fashion-MNIST the same steps at its usual budget, eps 0.1 (eps in
pixel units). The attack is a torchattacks class run with the
model in eval mode (torchattacks' default), built once per model in ``prepare``.
"""
from __future__ import annotations

from typing import ClassVar

from bench.training import Method, Range

LINF_ATTACK = {"28x28": {"eps": 0.3, "step_size": 0.01, "steps": 40},
               "fashion_mnist": {"eps": 0.1},  # MNIST's 40 steps of 0.01 (4 eps of travel), at its own budget
               "32x32": {"eps": 8 / 255, "step_size": 2 / 255, "steps": 10}}
#: the values LINF_ATTACK's settings may take: a radius (0: no attack), a positive step, at least one step
LINF_RANGES = {"eps": Range.at_least(0), "step_size": Range.above(0), "steps": Range.count(1)}
#: where LINF_ATTACK's values come from (the baselines' own settings: their original code)
LINF_SOURCES = {
    "eps": "28x28: 0.3, 32x32: 8/255: paper Table 1 (the certified L∞ radius); MadryLab mnist_challenge / "
           "cifar10_challenge config.json 'epsilon'; Fashion-MNIST: 0.1, its usual L∞ budget (Wong & Kolter 2018, "
           "locuslab/convex_adversarial examples/fashion_mnist.py --epsilon 0.1)",
    "step_size": "28x28: 0.01 (MadryLab mnist_challenge config.json 'a'); 32x32: 2/255 (cifar10_challenge "
                 "'step_size': 2.0). The authors' harness trains with 7 steps of 0.1 on MNIST (experiments/e1.py): "
                 "not used, a baseline's own settings come from its original code",
    "steps": "28x28: 40 (mnist_challenge 'k'); 32x32: 10 (cifar10_challenge 'num_steps'; TRADES --num-steps 10)",
}


class AdversarialMethod(Method):
    """A method that trains on x' = attack(x); subclasses name the torchattacks class."""

    attack_class: ClassVar[type]
    attack_options: ClassVar[dict] = {}

    def prepare(self, model, example):
        h = self.hparams
        self.attack = self.attack_class(model, eps=h["eps"], alpha=h["step_size"], steps=int(h["steps"]),
                                        **self.attack_options)
        return model

    def adversarial(self, model, images, labels):
        """The adversarial inputs the loss trains on: in the eps-box around ``images``, in [0,1]."""
        return self.attack(images, labels)
