"""DA: data augmentation (Shorten & Khoshgoftaar 2019) with uniform draws of the vicinity.

Loss: the cross-entropy averaged over ``n_samples`` draws t ~ U(B(x)) per input, the mean term
of the paper's Eq. (5) alone (``ours`` with λ = 0). ``n_samples`` defaults to ``ours``'s n so
that the two differ only by the standard-deviation term.
"""
import torch.nn.functional as F

from bench.method import LossOutput, Method, register_method


@register_method
class DA(Method):
    key = "da"
    name = "DA"
    citation = "Shorten & Khoshgoftaar, A survey on image data augmentation for deep learning, 2019"
    architectures = ("resnet18", "wrn8", "cifar_resnet110", "cnn7", "convnet")
    defaults = {"all": {"n_samples": 16}}

    def loss(self, model, images, labels):
        n = int(self.hparams["n_samples"])
        targets = labels.repeat_interleave(n)
        logits = model(self.samples(images, n))
        return LossOutput(F.cross_entropy(logits, targets), logits, targets)
