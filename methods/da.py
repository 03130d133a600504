"""DA: data augmentation (Shorten & Khoshgoftaar 2019) with uniform draws of the vicinity.

Loss: the cross-entropy averaged over ``n_samples`` draws t ~ U(B(x)) per input, the mean term
of the paper's Eq. (5) alone: the *loss* of ``ours`` with λ = 0 (the paper, Section 4, RQ4: with
λ close to 0 "the training process becomes similar to data-augmented training with random
perturbation"). ``n_samples`` is ``ours``'s n (50), so the two losses differ only by the
standard-deviation term. That is true of the loss, not of the method: DA predicts by the plain
argmax on x (``vote`` is False) where ``ours`` takes the majority over ``vote_samples`` draws
(Eq. (6)), and DA does not forward the clean input beside its draws (n images per input, not
n + 1). Optimiser, schedule, batch size and epochs are the shared recipe of both here
(``docs/recipes.csv``). Under a memory budget the batch runs in chunks of whole images
(:class:`bench.training.method.VicinalMethod`).
"""
import torch.nn.functional as F

from bench.training import ImageLosses, Range, VicinalMethod, register_method


@register_method
class DA(VicinalMethod):
    key = "da"
    name = "DA"
    citation = "Shorten & Khoshgoftaar, A survey on image data augmentation for deep learning, 2019"
    architectures = ("resnet18", "wrn8", "cifar_resnet110", "cnn7", "convnet")
    defaults = {"all": {"n_samples": 50}}
    ranges = {"n_samples": Range.count(1)}
    sources = {"n_samples": "= ours' n (authors' code 'num':50): the paper's DA is ours with λ = 0 (Section 4.3); "
                            "no source gives DA its own n"}

    def image_losses(self, model, images, labels, samples, batch_size):
        N, n = samples.shape[:2]
        targets = labels.repeat_interleave(n)
        logits = model(samples.flatten(0, 1))
        losses = F.cross_entropy(logits, targets, reduction="none").view(N, n).mean(1)
        return ImageLosses(losses, {}, logits, targets)
