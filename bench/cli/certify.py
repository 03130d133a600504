"""``python -m bench certify``: a user's own model (``module:name`` or ``file.py:name``) certified on a
dataset split through :func:`bench.api.certify`."""
from __future__ import annotations

import argparse
import logging
from pathlib import Path

from bench import data as bdata
from bench.io import write_csv

log = logging.getLogger("bench")


def _user_model(spec: str, weights: Path | None):
    """``module:name`` (or ``path/to/file.py:name``): an ``nn.Module``, or a callable returning
    one, from user code; ``weights``: a safetensors state dict loaded into it (never unpickled)."""
    import torch

    from bench.training import load_plugin

    where, _, name = spec.rpartition(":")
    if not where or not name:
        raise SystemExit(f"bench: --model {spec!r}: give module:name or path/to/file.py:name")
    try:
        module = load_plugin(where)
    except FileNotFoundError:
        raise SystemExit(f"bench: --model: no such file {where}") from None
    try:
        obj = getattr(module, name)
    except AttributeError:
        raise SystemExit(f"bench: --model: {where} has no {name!r}") from None
    model = obj if isinstance(obj, torch.nn.Module) else obj()
    if not isinstance(model, torch.nn.Module):
        raise SystemExit(f"bench: --model: {spec} is not an nn.Module nor returns one (got {type(model).__name__})")
    if weights is not None:
        from safetensors.torch import load_file

        from bench.training.external import check_fit

        tensors = load_file(str(weights))
        check_fit(model, tensors, f"--weights {weights} for --model {spec}")
        model.load_state_dict(tensors)
    return model.eval()


def cmd_certify(args: argparse.Namespace) -> None:
    """Certify a user's model on a dataset split (:func:`bench.api.certify`); metrics with their
    intervals on stdout, the per-input frame and the metrics as CSV under ``--out``."""
    from bench import api

    model = _user_model(args.model, args.weights)
    split = bdata.load_split(args.dataset, args.split, args.root, subset_per_class=args.per_class or None)
    result = api.certify(model, split, vicinity=args.vicinity, kappa=args.kappa, alpha=args.alpha,
                         procedure=args.procedure, budget=args.budget, seed=args.seed, progress=True)
    if args.out:
        write_csv(result.frame, args.out / "certificates.csv")
        write_csv(result.metrics.reset_index(), args.out / "metrics.csv")
    print(result.metrics.round(2).to_string())
