"""The vote rule offered for every method (issue 24): one config line, ``vote: [da, erm]``, adds
for each listed method ``m`` the method ``m_vote``: ``m``'s trained model itself (the same
weights, not trained again), predicting by the majority class over ``vote_samples`` draws of
the run's main vicinity (as many as the run's ``ours`` draws), which is the rule ``ours`` predicts by (Section 3.2 after Eq. (6);
:meth:`bench.training.method.Method.predict`).

So "ours against DA, both voting, attacked adaptively" is a comparison of one inference rule:
the attack tables put ``da_vote`` beside ``ours`` under the vote and ``da`` beside the other
argmax rows (:data:`bench.tables.attacks.COMPARED`). A vote method is in the attack tables
only: its certificates are its method's (certification samples the network, not the vote), so
the certification tables keep one row, the method's (:func:`bench.runs.runs` ``votes=False``). The ``vote`` job (``rules/train.smk``,
:mod:`bench.jobs.vote`) writes the derived model's folder from its method's trained files.
"""
from __future__ import annotations

from typing import Any

from bench.data import dataset_info
from bench.training.method import METHODS, Method, Range
from bench.training.plugins import available_methods, get_method

__all__ = ["SUFFIX", "VOTE_SAMPLES", "register_votes", "voted"]

#: a derived method's key is its method's key with this suffix
SUFFIX = "_vote"
#: the draws of a derived vote when the config has no vicinity vote of its own to match: the
#: number ``ours`` votes with by default (methods/ours.py ``vote_samples``, the project's choice,
#: as the paper states none)
VOTE_SAMPLES = 100


def voted(config: dict[str, Any]) -> dict[str, str]:
    """The config's derived vote methods: ``m_vote`` -> ``m`` for each ``m`` of ``vote:``."""
    return {f"{m}{SUFFIX}": m for m in config.get("vote") or []}


def vicinity_vote_samples(config: dict[str, Any]) -> set[int]:
    """The ``vote_samples`` of the config's own methods that vote over the vicinity (whose vote
    inputs are vicinity draws, as ``ours``'; RS's Gaussian vote is another rule), on each of its
    datasets, with the config's overrides: the count a derived vote must use to be the same rule."""
    chosen = config.get("methods") or []
    found: set[int] = set()
    for key in (available_methods() if chosen == "all" else chosen):
        cls = METHODS.get(key)
        if cls is None or not cls.vote or getattr(cls, "voted_from", None) or cls.vote_inputs is not Method.vote_inputs:
            continue
        for dataset in config.get("datasets") or []:
            hparams = cls.resolve_hparams(dataset_info(dataset), (config.get("hparams") or {}).get(key))
            found.add(int(hparams["vote_samples"]))
    return found


def register_votes(config: dict[str, Any]) -> None:
    """Register ``m_vote`` for each method of ``vote:`` (idempotent): a subclass of ``m``'s class
    that predicts by the vote, with ``vote_samples`` added to its hyperparameters: by default
    the count the config's own vicinity votes use (``ours``' 25 in the default config; with none,
    :data:`VOTE_SAMPLES`), else ``hparams: {da_vote: {vote_samples: 200}}``, the only
    hyperparameter a vote method has of its own (its model is ``m``'s). Its module is ``m``'s, so
    its code stamp is ``m``'s: an edit of ``m`` reruns both."""
    counts = vicinity_vote_samples(config) if voted(config) else set()
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
        chosen, external = config.get("methods"), {m.get("name") for m in config.get("models") or []}
        if isinstance(chosen, list) and method not in chosen and method not in external:
            raise ValueError(f"vote: '{method}' is not among the run's methods ({', '.join(chosen)}): "
                             "its vote scores its trained model")
        overrides = (config.get("hparams") or {}).get(key) or {}
        if set(overrides) - {"vote_samples"}:
            raise ValueError(f"vote: hparams.{key} may set vote_samples only ({', '.join(sorted(overrides))} given): "
                             f"its model is {method}'s, trained with hparams.{method}")
        if len(counts) > 1 and "vote_samples" not in overrides:
            raise ValueError(f"vote: the config's vicinity votes use different numbers of draws "
                             f"({', '.join(map(str, sorted(counts)))}); set hparams.{key}.vote_samples to the one "
                             f"{key} is compared with")
        samples = next(iter(counts)) if len(counts) == 1 else VOTE_SAMPLES
        defaults = {**cls.defaults, "all": {**cls.defaults.get("all", {}), "vote_samples": samples}}
        attrs = {"__module__": cls.__module__, "key": key, "name": f"{cls.name} + vote", "vote": True,
                 "voted_from": method, "defaults": defaults,
                 "ranges": {**getattr(cls, "ranges", {}), "vote_samples": Range.count(1)},
                 "citation": f"{cls.citation}; predicting by the vote over the vicinity (Section 3.2)",
                 "sources": {**getattr(cls, "sources", {}),
                             "vote_samples": "the count the run's own vicinity votes use (ours'), so that the votes are one rule"}}
        METHODS.add(key, type(f"{cls.__name__}Vote", (cls,), attrs), replace=True)
