"""``python -m bench certify``: a user's own model (``module:name`` or ``file.py:name``) certified on a
dataset split through :func:`bench.api.certify`.

Errors in what the user gave (a missing file, a pickled checkpoint, weights that do not fit, a
module that does not import, a model that raises) are raised with the option they concern, for
:func:`bench.cli.main` to print as one line.
"""
from __future__ import annotations

import argparse
import logging
from pathlib import Path

import torch

from bench import data as bdata
from bench.io import write_csv

__all__ = ["PROCEDURE_NOTES", "cmd_certify", "describe_settings"]

log = logging.getLogger("bench")

#: what each procedure is, in the words of docs/certification.md: printed with every result and
#: in ``certify --help``, so that a certificate of the invalid procedure is never read as a valid one
PROCEDURE_NOTES = {
    "mixture": "a valid sequential test (a test martingale): an input with p ≤ 1−κ is certified with "
               "probability at most α",
    "sprt": "a valid sequential test (Wald's SPRT of 1−κ against 1−κ/10): an input with p ≤ 1−κ is "
            "certified with probability at most α",
    "paper": "the paper's procedure (Algorithm 2's exact binomial tests, re-run after every sample), which is "
             "NOT a valid sequential test at the stated α: it certifies inputs with p ≤ 1−κ far more often "
             "than α (9.24 % at p = 1−κ, κ = α = 1 %, 20,000 samples; docs/certification.md)",
}

#: how a pickle starts: a zip archive (torch.save since torch 1.6) or a pickle protocol 2+ opcode
_PICKLE_MAGIC = (b"PK\x03\x04", b"\x80")


def _not_safetensors(weights: Path, error: Exception) -> str:
    """The message for a ``--weights`` file that safetensors cannot read: a pickle (``torch.save``)
    is named as one, with the two lines that convert it; anything else as not safetensors."""
    with open(weights, "rb") as f:
        head = f.read(4)
    if head.startswith(_PICKLE_MAGIC):
        target = weights.with_suffix(".safetensors")
        return (f"--weights {weights} is a pickle (torch.save), not safetensors: bench loads weights only from a "
                f"safetensors state dict, which cannot run code when read. Convert it once, in Python (of a "
                f"checkpoint that holds more than the weights, save only its state dict):\n"
                f"    state_dict = torch.load({str(weights)!r}, weights_only=True)\n"
                f"    safetensors.torch.save_file(state_dict, {str(target)!r})")
    return (f"--weights {weights} is not a safetensors file ({type(error).__name__}: {error}); give the model's "
            f"state dict saved with safetensors.torch.save_file")


def _user_model(spec: str, weights: Path | None) -> torch.nn.Module:
    """``module:name`` (or ``path/to/file.py:name``): an ``nn.Module``, or a callable returning
    one, from user code, in eval mode; ``weights``: a safetensors state dict loaded into it (never
    unpickled). Whatever fails is raised naming the option: FileNotFoundError (no such file),
    ImportError (the module does not import), ValueError (no such name, not a module, weights
    that are a pickle, no safetensors or do not fit), RuntimeError (building the model raised)."""
    from bench.training import load_plugin

    where, _, name = spec.rpartition(":")
    if not where or not name:
        raise ValueError(f"--model {spec!r}: give module:name or path/to/file.py:name")
    if where.endswith(".py") and not Path(where).is_file():
        raise FileNotFoundError(f"--model {spec}: no such file {where}")
    if weights is not None and not weights.is_file():
        raise FileNotFoundError(f"--weights {weights}: no such file" + (" (a folder)" if weights.is_dir() else ""))
    try:
        module = load_plugin(where)
    except Exception as error:  # the user's code: whatever it raises, the one line says where
        raise ImportError(f"--model {spec}: importing {where} raised {type(error).__name__}: {error}") from error
    try:
        obj = getattr(module, name)
    except AttributeError:
        raise ValueError(f"--model {spec}: {where} has no {name!r}") from None
    if isinstance(obj, torch.nn.Module):
        model = obj
    else:
        try:
            model = obj()
        except Exception as error:
            raise RuntimeError(f"--model {spec}: calling {name}() raised {type(error).__name__}: {error}") from error
    if not isinstance(model, torch.nn.Module):
        raise ValueError(f"--model {spec} is not an nn.Module nor returns one (got {type(model).__name__})")
    if weights is not None:
        from safetensors import SafetensorError
        from safetensors.torch import load_file

        from bench.training.external import check_fit

        try:
            tensors = load_file(str(weights))
        except SafetensorError as error:
            raise ValueError(_not_safetensors(weights, error)) from error
        check_fit(model, tensors, f"--weights {weights} for --model {spec}")
        model.load_state_dict(tensors)
    return model.eval()


def describe_settings(args: argparse.Namespace, inputs: int) -> str:
    """The settings a certification ran with, as printed above its metrics: the model and data,
    the vicinity, κ, α, the budget and seed, and what the procedure is (:data:`PROCEDURE_NOTES`)."""
    return (f"certified --model {args.model} on {inputs} {args.dataset} {args.split} images: vicinity "
            f"{args.vicinity}, κ = {args.kappa:g}, α = {args.alpha:g}, budget {args.budget} samples per input, "
            f"seed {args.seed}\nprocedure {args.procedure}: {PROCEDURE_NOTES[args.procedure]}")


def cmd_certify(args: argparse.Namespace) -> None:
    """Certify a user's model on a dataset split (:func:`bench.api.certify`); the settings and the
    metrics with their intervals on stdout, the per-input frame and the metrics as CSV under
    ``--out``."""
    from bench import api

    model = _user_model(args.model, args.weights)
    split = bdata.load_split(args.dataset, args.split, args.root, subset_per_class=args.per_class or None)
    try:
        result = api.certify(model, split, vicinity=args.vicinity, kappa=args.kappa, alpha=args.alpha,
                             procedure=args.procedure, budget=args.budget, seed=args.seed, progress=True)
    except (RuntimeError, TypeError) as error:  # mostly the model's forward: say on what it ran
        shape = "×".join(map(str, split.images.shape[1:]))
        raise RuntimeError(f"certifying --model {args.model} on {args.dataset} images of shape {shape} raised "
                           f"{type(error).__name__}: {error}") from error
    if args.out:
        write_csv(result.frame, args.out / "certificates.csv")
        write_csv(result.metrics.reset_index(), args.out / "metrics.csv")
    print(describe_settings(args, len(result.frame)))
    print(result.metrics.round(2).to_string())
