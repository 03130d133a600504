"""The vote rule offered for every method (issue 24): one config line, ``vote: [da, erm]``, adds
for each listed method ``m`` the method ``m_vote``: ``m``'s trained model itself (the same
weights, not trained again), predicting by the majority class over ``vote_samples`` draws of
the run's main vicinity, which is the rule ``ours`` predicts by (Section 3.2 after Eq. (6);
:meth:`bench.training.method.Method.predict`).

So "ours against DA, both voting, attacked adaptively" is a comparison of one inference rule:
the tables put ``da_vote`` beside ``ours`` under the vote and ``da`` beside the other argmax
rows (:data:`bench.tables.attacks.COMPARED`). The ``vote`` job (``rules/train.smk``,
:mod:`bench.jobs.vote`) writes the derived model's folder from its method's trained files.
"""
from __future__ import annotations

from typing import Any

from bench.training.method import METHODS, Method, Range
from bench.training.plugins import get_method

__all__ = ["SUFFIX", "VOTE_SAMPLES", "register_votes", "voted"]

#: a derived method's key is its method's key with this suffix
SUFFIX = "_vote"
#: the draws of a derived vote: the number ``ours`` votes with (methods/ours.py ``vote_samples``,
#: the project's choice, as the paper states none), so that both votes are one rule
VOTE_SAMPLES = 100


def voted(config: dict[str, Any]) -> dict[str, str]:
    """The config's derived vote methods: ``m_vote`` -> ``m`` for each ``m`` of ``vote:``."""
    return {f"{m}{SUFFIX}": m for m in config.get("vote") or []}


def register_votes(config: dict[str, Any]) -> None:
    """Register ``m_vote`` for each method of ``vote:`` (idempotent): a subclass of ``m``'s class
    that predicts by the vote, with ``vote_samples`` added to its hyperparameters (a config sets
    it as any other: ``hparams: {da_vote: {vote_samples: 200}}``). Its module is ``m``'s, so its
    code stamp is ``m``'s: an edit of ``m`` reruns both."""
    for key, method in voted(config).items():
        try:
            cls: type[Method] = get_method(method)
        except ValueError as exc:
            raise ValueError(f"vote: {exc}") from None
        if key in METHODS and getattr(METHODS[key], "voted_from", None) != method:
            raise ValueError(f"vote: '{key}' is the name of a registered method; it cannot also be {method}'s vote")
        if cls.vote:
            raise ValueError(f"vote: '{method}' already predicts by a vote; list only argmax methods")
        if method.endswith(SUFFIX):
            raise ValueError(f"vote: '{method}' is itself a derived vote method")
        defaults = {**cls.defaults, "all": {**cls.defaults.get("all", {}), "vote_samples": VOTE_SAMPLES}}
        attrs = {"__module__": cls.__module__, "key": key, "name": f"{cls.name} + vote", "vote": True,
                 "voted_from": method, "defaults": defaults,
                 "ranges": {**getattr(cls, "ranges", {}), "vote_samples": Range.count(1)},
                 "citation": f"{cls.citation}; predicting by the vote over the vicinity (Section 3.2)",
                 "sources": {**getattr(cls, "sources", {}),
                             "vote_samples": "the number ours votes with (methods/ours.py), so that the two votes are one rule"}}
        METHODS.add(key, type(f"{cls.__name__}Vote", (cls,), attrs), replace=True)
