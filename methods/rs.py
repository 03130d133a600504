"""RS: Gaussian-noise training for randomized smoothing (Cohen, Rosenfeld & Kolter 2019).

Loss: cross-entropy on x + N(0, σ²I), σ = 0.25 by default, noise added in [0,1] pixel space
before the model's normalisation and not clipped, as in Cohen et al.'s ``train.py``.
Prediction: Cohen et al.'s PREDICT without abstention, the majority class over ``vote_samples``
noisy copies.

Training forwards one noisy copy per image, as many images as ERM, so its loss is not chunked;
the vote's batch × ``vote_samples`` copies are classified in chunks under a memory budget
(``Method.predict``, :mod:`bench.compute.memory`).
"""
import torch
import torch.nn.functional as F

from bench.training import LossOutput, Method, Range, register_method


@register_method
class RS(Method):
    key = "rs"
    name = "RS"
    citation = "Cohen, Rosenfeld & Kolter, Certified adversarial robustness via randomized smoothing, ICML 2019"
    architectures = ("cifar_resnet110", "convnet")
    native_certificate = "smoothing"
    defaults = {"all": {"sigma": 0.25, "vote_samples": 100}}
    ranges = {"sigma": Range.above(0), "vote_samples": Range.count(1)}  # σ = 0 smooths nothing: radius σ·Φ⁻¹(p) = 0
    sources = {"sigma": "locuslab/smoothing experiments.MD: CIFAR-10 cifar_resnet110 --noise 0.25 (the middle of "
                        "0.12/0.25/0.50); the authors' rand_step runs used 8/255 on ResNet-18 (checkpoints/configs.json), "
                        "not Cohen et al.'s RS",
               "vote_samples": "Cohen et al.'s PREDICT (locuslab/smoothing data/predict/.../N_100: its smallest N), "
                               "without abstention; the paper states no number (as for ours)"}
    vote = True

    def noisy(self, images: torch.Tensor) -> torch.Tensor:
        noise = torch.randn(images.shape, generator=self.generator, device=images.device, dtype=images.dtype)
        return images + float(self.hparams["sigma"]) * noise

    def vote_inputs(self, images: torch.Tensor, n: int) -> torch.Tensor:
        """Cohen et al.'s PREDICT votes over noisy copies, not over the vicinity."""
        return self.noisy(images.repeat_interleave(n, 0))

    def loss(self, model, images, labels):
        logits = model(self.noisy(images))
        return LossOutput(F.cross_entropy(logits, labels), logits)
