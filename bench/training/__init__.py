"""Training: what a method is and how it registers (:mod:`~bench.training.method`), where methods
come from (:mod:`~bench.training.plugins`), the paper's optimisers (:mod:`~bench.training.optim`),
training-time augmentation (:mod:`~bench.training.augment`), the resumable loop
(:mod:`~bench.training.loop`) and models trained elsewhere (:mod:`~bench.training.external`).

A method plugin needs only this package: ``from bench.training import Method, register_method``.
"""
from bench.training.method import (
    METHODS,
    Backward,
    ImageLosses,
    LossOutput,
    Method,
    Range,
    VicinalMethod,
    majority_vote,
    plain_backward,
    register_method,
    shape_group,
)
from bench.training.plugins import available_methods, get_method, load_plugin

__all__ = ["Backward", "ImageLosses", "LossOutput", "METHODS", "Method", "Range", "VicinalMethod", "available_methods",
           "get_method", "load_plugin", "majority_vote", "plain_backward", "register_method", "shape_group"]
