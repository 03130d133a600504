"""Checkpoints in safetensors: weights, optimiser state and random-number-generator states.

A checkpoint is two files written atomically: ``<stem>.safetensors`` holds every tensor (model
state, optimiser state tensors, RNG states as uint8 tensors) and ``<stem>.json`` holds the rest
(epoch, optimiser hyperparameters and scalar state, the run's spec, its log, and the SHA-256 of
the tensor file). Loading never unpickles anything: safetensors and JSON only.
"""
from __future__ import annotations

import hashlib
import json
from pathlib import Path
from typing import Any

import torch
from safetensors.torch import load_file, save_file

from bench.io import atomic_path, write_json
from bench.paths import model_file

__all__ = ["load_checkpoint", "load_model", "save_checkpoint", "sha256"]


def sha256(path: str | Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


def _split_optimizer(state: dict) -> tuple[dict[str, torch.Tensor], dict]:
    tensors, scalars = {}, {}
    for idx, entries in state["state"].items():
        for key, value in entries.items():
            if isinstance(value, torch.Tensor):
                tensors[f"optim.{idx}.{key}"] = value.detach().cpu().contiguous()
            else:
                scalars.setdefault(str(idx), {})[key] = value
    return tensors, {"param_groups": state["param_groups"], "scalars": scalars}


def _join_optimizer(tensors: dict[str, torch.Tensor], meta: dict) -> dict:
    state: dict[int, dict[str, Any]] = {}
    for name, value in tensors.items():
        if name.startswith("optim."):
            _, idx, key = name.split(".", 2)
            state.setdefault(int(idx), {})[key] = value
    for idx, entries in meta["scalars"].items():
        state.setdefault(int(idx), {}).update(entries)
    return {"state": state, "param_groups": meta["param_groups"]}


def save_checkpoint(stem: str | Path, model: torch.nn.Module, optimizer: torch.optim.Optimizer,
                    generators: dict[str, torch.Generator], meta: dict) -> Path:
    """Write ``<stem>.safetensors`` and ``<stem>.json``; the JSON (written last) marks it complete."""
    stem = Path(stem)
    tensors = {f"model.{k}": v.detach().cpu().contiguous() for k, v in model.state_dict().items()}
    optim_tensors, optim_meta = _split_optimizer(optimizer.state_dict())
    tensors.update(optim_tensors)
    tensors["rng.torch"] = torch.get_rng_state()
    if torch.cuda.is_available():
        tensors["rng.cuda"] = torch.cuda.get_rng_state()
    for name, gen in generators.items():
        tensors[f"rng.gen.{name}"] = gen.get_state().cpu()
    weights = stem.with_suffix(".safetensors")
    atomic_path(weights, lambda tmp: save_file(tensors, str(tmp)))
    write_json({**meta, "optimizer": optim_meta, "weights_sha256": sha256(weights)}, stem.with_suffix(".json"))
    return weights


def load_checkpoint(stem: str | Path, model: torch.nn.Module, optimizer: torch.optim.Optimizer | None,
                    generators: dict[str, torch.Generator]) -> dict:
    """Restore what :func:`save_checkpoint` wrote; returns its JSON metadata.

    Refuses a tensor file whose SHA-256 differs from the one recorded beside it.
    """
    stem = Path(stem)
    meta = json.loads(stem.with_suffix(".json").read_text())
    weights = stem.with_suffix(".safetensors")
    if sha256(weights) != meta["weights_sha256"]:
        raise ValueError(f"checkpoint {weights} does not match the hash recorded in {stem.with_suffix('.json')}")
    tensors = load_file(str(weights))
    device = next(iter(model.state_dict().values())).device
    model.load_state_dict({k[6:]: v.to(device) for k, v in tensors.items() if k.startswith("model.")})
    if optimizer is not None:
        state = _join_optimizer(tensors, meta["optimizer"])
        optimizer.load_state_dict(state)
    torch.set_rng_state(tensors["rng.torch"])
    if "rng.cuda" in tensors and torch.cuda.is_available():
        torch.cuda.set_rng_state(tensors["rng.cuda"])
    for name, gen in generators.items():
        gen.set_state(tensors[f"rng.gen.{name}"])  # a CPU byte tensor, for CUDA generators too
    return meta


def load_model(run_dir: str | Path, device: torch.device | str = "cpu") -> torch.nn.Module:
    """The finished model of a run directory (``model.json`` + ``model.safetensors``), in eval
    mode; refuses weights whose SHA-256 differs from the recorded one."""
    run_dir = Path(run_dir)
    meta_path = model_file(run_dir, "model")
    if not meta_path.exists():
        raise FileNotFoundError(f"{run_dir} holds no finished model (no model.json)")
    meta = json.loads(meta_path.read_text())
    weights = model_file(run_dir, "weights")
    if sha256(weights) != meta["weights_sha256"]:
        raise ValueError(f"{weights} does not match the hash recorded in {meta_path}")
    from bench.data import dataset_info
    from bench.models import create_model

    model = create_model(meta["spec"]["arch"], dataset_info(meta["spec"]["dataset"]))
    model.load_state_dict(load_file(str(weights)))
    return model.to(device).eval()
