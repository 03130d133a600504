"""ERM: empirical risk minimisation (Vapnik 1999), cross-entropy on the clean inputs."""
import torch.nn.functional as F

from bench.training import LossOutput, Method, register_method


@register_method
class ERM(Method):
    key = "erm"
    name = "ERM"
    citation = "Vapnik, The Nature of Statistical Learning Theory, 1999"
    architectures = ("resnet18", "wrn8", "cifar_resnet110", "cnn7", "convnet")
    sources = {}  # no hyperparameters of its own: the shared recipe (bench.report.recipes)

    def loss(self, model, images, labels):
        logits = model(images)
        return LossOutput(F.cross_entropy(logits, labels), logits)
