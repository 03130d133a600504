"""External checkpoints: models trained elsewhere, evaluated by the DAG beside the trained methods.

A config's optional ``models:`` block lists them::

    models:
      - name: my_model              # how its rows are labelled (lower case, digits, _)
        dataset: fashion_mnist
        arch: convnet               # a bench.models name, or timm:<name>
        weights: path/to/model.safetensors
        predict_as: erm             # the method whose prediction rule it uses (a vote for ours/rs); default erm
        claims: ours                # optional: the method it claims to be, shown beside its rows

Each entry becomes a method of its own name (:func:`register`), a subclass of ``predict_as``
marked ``external``, so that every evaluation job (certification, attacks, audit, native
certificates, masking checks) runs on it unchanged; the ``import_model`` rule replaces its
training (:func:`import_checkpoint`). Its rows carry ``external`` (the weights' file and what it
claims). Weights load with safetensors (never unpickled) into the named architecture, and a
checkpoint that does not fit it is refused with the missing, unexpected and mis-shaped tensors.
"""
from __future__ import annotations

from pathlib import Path
from typing import Any

import torch

from bench.paths import model_file

__all__ = ["check_fit", "external_models", "import_checkpoint", "register"]


def external_models(config: dict) -> dict[str, dict[str, Any]]:
    """The config's ``models:`` entries by name (empty without the block)."""
    return {m["name"]: m for m in config.get("models") or []}


def register(config: dict) -> None:
    """Register each external model as a method (idempotent): its ``predict_as`` method's class
    with the model's name as key and its architecture as the only one it has."""
    from bench.training import METHODS, get_method

    for name, m in external_models(config).items():
        if name in METHODS and getattr(METHODS[name], "external", None) is None:
            raise ValueError(f"models: '{name}' is the name of a registered method; give the external model "
                             "another name")
        base = get_method(m.get("predict_as", "erm"))
        arch = str(m["arch"]).replace("timm:", "timm-")
        METHODS.add(name, type(f"External_{name}", (base,), {
            "key": name, "name": f"{name} (external)", "architectures": (arch,),
            "citation": f"external checkpoint {m['weights']}" + (f", claims {m['claims']}" if m.get("claims") else ""),
            "external": {"weights": str(m["weights"]), "claims": m.get("claims"), "predict_as": base.key},
        }), replace=True)


def _state_dict(path: Path) -> dict[str, torch.Tensor]:
    from safetensors.torch import load_file

    if not path.exists():
        raise FileNotFoundError(f"external checkpoint {path} does not exist")
    return load_file(str(path))


def check_fit(model: torch.nn.Module, tensors: dict[str, torch.Tensor], what: str) -> None:
    """Refuse ``tensors`` that do not fit ``model``: every missing, unexpected and mis-shaped key."""
    expected = model.state_dict()
    missing = sorted(set(expected) - set(tensors))
    unexpected = sorted(set(tensors) - set(expected))
    shapes = [f"{k}: checkpoint {tuple(tensors[k].shape)}, architecture {tuple(expected[k].shape)}"
              for k in sorted(set(expected) & set(tensors)) if tensors[k].shape != expected[k].shape]
    if missing or unexpected or shapes:
        parts = [f"missing keys: {', '.join(missing)}" if missing else "",
                 f"unexpected keys: {', '.join(unexpected)}" if unexpected else "",
                 f"mismatched shapes: {'; '.join(shapes)}" if shapes else ""]
        raise ValueError(f"{what} does not fit: " + " | ".join(p for p in parts if p))


def import_checkpoint(entry: dict, out_dir: str | Path, hparams: dict, vicinity: str,
                      provenance: dict | None = None) -> dict:
    """Write ``model.safetensors``, ``model.json`` and an empty ``log.csv`` into ``out_dir`` from
    the external checkpoint ``entry``, as a finished training run would, after checking that its
    tensors fit the named architecture. A checkpoint of the bare network (without the leading
    :class:`bench.models.Normalize` layer's ``0.mean``/``0.std``) gets the dataset's statistics."""
    from safetensors.torch import save_file

    from bench.data import dataset_info
    from bench.io import atomic_path, write_json
    from bench.models import create_model
    from bench.models.checkpoint import sha256

    out = Path(out_dir)
    info = dataset_info(entry["dataset"])
    arch = str(entry["arch"]).replace("timm:", "timm-")
    model = create_model(arch, info)
    tensors = _state_dict(Path(entry["weights"]))
    normalize = {k: v for k, v in model.state_dict().items() if k.startswith("0.")}
    if not {"0.mean", "0.std"} <= set(tensors):  # the bare network: its keys under the Sequential's "1."
        tensors = {**normalize, **{f"1.{k}": v for k, v in tensors.items()}}
    check_fit(model, tensors, f"external checkpoint {entry['weights']} for architecture '{entry['arch']}'")
    model.load_state_dict(tensors)
    out.mkdir(parents=True, exist_ok=True)
    weights = model_file(out, "weights")
    state = {k: v.detach().cpu().contiguous() for k, v in model.state_dict().items()}
    atomic_path(weights, lambda tmp: save_file(state, str(tmp)))
    model_file(out, "log").write_text("epoch,loss,train_accuracy,val_accuracy,seconds\n")  # no training: no rows
    result = {
        "spec": {"dataset": entry["dataset"], "method": entry["name"], "arch": arch, "seed": 0},
        "hparams": hparams, "vicinity": vicinity,
        "method": {"key": entry["name"], "name": f"{entry['name']} (external)", "external": True,
                   "predict_as": entry.get("predict_as", "erm"), "claims": entry.get("claims")},
        "source": {"weights": str(entry["weights"]), "sha256": sha256(Path(entry["weights"]))},
        "epochs": 0, "weights_sha256": sha256(weights), "torch": torch.__version__,
        **({"provenance": provenance} if provenance is not None else {}),
    }
    write_json(result, model_file(out, "model"))
    return result

