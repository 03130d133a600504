"""RS: Gaussian-noise training for randomized smoothing (Cohen, Rosenfeld & Kolter 2019).

Loss: cross-entropy on x + N(0, σ²I), σ = 0.25 by default, noise added in [0,1] pixel space
before the model's normalisation and not clipped, as in Cohen et al.'s ``train.py``.
Prediction: Cohen et al.'s PREDICT without abstention, the majority class over ``vote_samples``
noisy copies.
"""
import torch
import torch.nn.functional as F

from bench.method import LossOutput, Method, majority_vote, register_method


@register_method
class RS(Method):
    key = "rs"
    name = "RS"
    citation = "Cohen, Rosenfeld & Kolter, Certified adversarial robustness via randomized smoothing, ICML 2019"
    architectures = ("cifar_resnet110", "convnet")
    defaults = {"all": {"sigma": 0.25, "vote_samples": 100}}
    vote = True

    def noisy(self, images: torch.Tensor) -> torch.Tensor:
        noise = torch.randn(images.shape, generator=self.generator, device=images.device, dtype=images.dtype)
        return images + float(self.hparams["sigma"]) * noise

    def loss(self, model, images, labels):
        logits = model(self.noisy(images))
        return LossOutput(F.cross_entropy(logits, labels), logits)

    def predict(self, model, images):
        n = int(self.hparams["vote_samples"])
        with torch.inference_mode():
            model.eval()
            copies = images.repeat_interleave(n, 0)
            votes = model(self.noisy(copies)).argmax(1).view(len(images), n)
            return majority_vote(votes, self.info.num_classes)
