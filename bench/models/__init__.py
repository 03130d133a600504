"""Networks: the paper's architectures by name (:mod:`~bench.models.architectures`, re-exported
here), checkpoints in safetensors (:mod:`~bench.models.checkpoint`) and sound logit bounds
through auto_LiRPA (:mod:`~bench.models.lirpa`)."""
from bench.models.architectures import MODELS, Normalize, count_parameters, create_model, register_model, timm_model

__all__ = ["MODELS", "Normalize", "count_parameters", "create_model", "register_model", "timm_model"]
