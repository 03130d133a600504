"""Networks: the paper's architectures by name (:mod:`~bench.models.architectures`, re-exported
here), checkpoints in safetensors (:mod:`~bench.models.checkpoint`) and sound logit bounds
through auto_LiRPA (:mod:`~bench.models.lirpa`)."""
from bench.models.architectures import MODELS, Normalize, count_parameters, create_model, register_model, timm_model

__all__ = ["MODELS", "Normalize", "count_parameters", "create_model", "register_model", "timm_model"]


def __getattr__(name: str):
    """The old module ``bench.models``'s other names (the builders ``convnet``, ``resnet18`` …),
    now in :mod:`bench.models.architectures`."""
    import importlib

    architectures = importlib.import_module("bench.models.architectures")
    if name.startswith("__") or not hasattr(architectures, name):
        raise AttributeError(f"module 'bench.models' has no attribute '{name}'")
    return getattr(architectures, name)
