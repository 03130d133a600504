"""The training loop: one method, one architecture, one dataset, resumable from checkpoints.

``train(spec, out_dir)`` trains ``spec.method`` on ``spec.arch`` and writes, under ``out_dir``:

- ``checkpoint.safetensors`` + ``checkpoint.json`` after every epoch (weights, optimiser and RNG
  states; :mod:`bench.checkpoint`): a killed run resumes from there and ends with the same
  weights as an uninterrupted one on the CPU;
- ``log.csv``: one row per epoch: loss, the method's named loss terms (the mean and standard
  deviation of Eq. (5) for ``ours``), training and validation accuracy, seconds, learning rate;
- ``model.safetensors`` + ``model.json`` once training has finished, never before: their
  presence means a finished model.

Optimisers follow the paper's Appendix C.1 unless a method declares its own.
"""
from __future__ import annotations

import json
import logging
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import pandas as pd
import torch
import torch.nn as nn
from safetensors.torch import save_file
from tqdm.auto import tqdm

from bench.checkpoint import load_checkpoint, load_model, save_checkpoint, sha256
from bench.data import DatasetInfo, Split, dataset_info, load_split
from bench.device import resolve_device
from bench.io import atomic_path, write_csv, write_json
from bench.method import get_method, load_plugin, shape_group
from bench.models import create_model
from bench.paper import check_compatible
from bench.vicinity import parse_vicinity

log = logging.getLogger(__name__)

__all__ = ["TrainSpec", "accuracy", "default_vicinity", "load_model", "make_optimizer", "resolve_device",
           "train"]

DEFAULT_VICINITY = {"28x28": "linf:0.3", "32x32": "linf:8/255"}  # Table 1


def default_vicinity(info: DatasetInfo) -> str:
    """Table 1's vicinity: L∞ 0.3 on 28×28 data, 8/255 on 32×32 data."""
    return DEFAULT_VICINITY[shape_group(info)]


def make_optimizer(model: nn.Module, arch: str, info: DatasetInfo):
    """Appendix C.1: Adadelta (lr 1.0) for the Basic ConvNet on 28×28 data; otherwise SGD
    (lr 0.01, weight decay 3.5e-3) with the rate divided by 10 at epochs 55, 75 and 90.

    Returns ``(optimizer, scheduler)``; the scheduler steps once per epoch.
    """
    if arch == "convnet" and info.image_size == 28:
        opt = torch.optim.Adadelta(model.parameters(), lr=1.0)
        return opt, torch.optim.lr_scheduler.MultiStepLR(opt, milestones=[], gamma=1.0)
    opt = torch.optim.SGD(model.parameters(), lr=0.01, weight_decay=3.5e-3)
    return opt, torch.optim.lr_scheduler.MultiStepLR(opt, milestones=[55, 75, 90], gamma=0.1)


@torch.inference_mode()
def accuracy(model: nn.Module, split: Split, batch_size: int = 1024) -> float:
    """Standard accuracy in percent: argmax of the logits on the clean images."""
    model.eval()
    correct = sum(int((model(x).argmax(1) == y).sum()) for x, y in split.batches(batch_size))
    return 100.0 * correct / max(1, len(split))


@dataclass
class TrainSpec:
    """Everything that defines a training run (its JSON form is stored with the model)."""

    dataset: str
    method: str
    arch: str
    seed: int = 0
    epochs: int = 1
    batch_size: int = 128
    vicinity: str | None = None  # default: Table 1's for the dataset
    hparams: dict[str, Any] = field(default_factory=dict)
    train_per_class: int | None = None
    val_per_class: int | None = None
    device: str | None = None
    data_root: str | None = None
    plugins: list[str] = field(default_factory=list)

    def identity(self) -> dict:
        """The fields that must match for a checkpoint to be resumed (not device or paths)."""
        d = asdict(self)
        for key in ("device", "data_root", "epochs"):
            d.pop(key)
        return d


def _resolve(spec: TrainSpec):
    """Check the spec before any work: plugins, method, compatibility, hyperparameters."""
    for plugin in spec.plugins:
        load_plugin(plugin)
    cls = get_method(spec.method)
    check_compatible(spec.method, spec.arch, list(cls.architectures))
    info = dataset_info(spec.dataset)
    if spec.epochs < 1 or spec.batch_size < 1:
        raise ValueError(f"epochs and batch_size must be >= 1, got {spec.epochs} and {spec.batch_size}")
    hparams = cls.resolve_hparams(info, spec.hparams)
    vicinity = spec.vicinity or default_vicinity(info)
    parse_vicinity(vicinity)
    return cls, info, hparams, vicinity


def train(spec: TrainSpec, out_dir: str | Path, progress: bool = True,
          stop_after_epoch: int | None = None, provenance: dict | None = None) -> dict:
    """Train (or resume, or return the finished result of) the run ``spec`` in ``out_dir``.

    ``provenance`` (:func:`bench.provenance.record`) is stored in ``model.json`` as given.
    ``stop_after_epoch`` ends the process-level run after that epoch, as a kill would (tests).
    Returns the final ``model.json`` content, or the last log row when stopped early.
    """
    out = Path(out_dir)
    cls, info, hparams, vicinity_spec = _resolve(spec)
    if (out / "model.json").exists():
        log.info("%s: already trained", out)
        return json.loads((out / "model.json").read_text())
    out.mkdir(parents=True, exist_ok=True)
    device = resolve_device(spec.device)
    torch.manual_seed(spec.seed)
    root = spec.data_root
    train_split = load_split(spec.dataset, "train", root, subset_per_class=spec.train_per_class,
                             seed=spec.seed).to(device)
    val_split = load_split(spec.dataset, "val", root, subset_per_class=spec.val_per_class,
                           seed=spec.seed).to(device)

    model = create_model(spec.arch, info).to(device)
    shuffle = torch.Generator().manual_seed(spec.seed)
    noise = torch.Generator(device=device).manual_seed(spec.seed + 1)
    method = cls(hparams, info, parse_vicinity(vicinity_spec), noise)
    trained = method.prepare(model, train_split.images[: spec.batch_size])
    optimizer, scheduler = method.optimizer(model, spec.arch)
    generators = {"shuffle": shuffle, "noise": noise}

    rows: list[dict] = []
    start_epoch = 0
    stem = out / "checkpoint"
    if stem.with_suffix(".json").exists():
        meta = load_checkpoint(stem, model, optimizer, generators)
        if meta["spec"] != spec.identity():
            raise ValueError(f"{stem}.json belongs to another run: {meta['spec']} (this run: {spec.identity()})")
        start_epoch, rows = meta["epoch"], meta["log"]
        scheduler.last_epoch = start_epoch
        log.info("%s: resuming after epoch %d", out, start_epoch)

    n_batches = -(-len(train_split) // spec.batch_size)
    method.batches_per_epoch = n_batches
    for epoch in range(start_epoch, spec.epochs):
        method.epoch = epoch
        row = _train_epoch(method, trained, model, optimizer, train_split, spec.batch_size, shuffle,
                           epoch, progress)
        scheduler.step()
        row["val_accuracy"] = accuracy(model, val_split)
        rows.append(row)
        save_checkpoint(stem, model, optimizer, generators,
                        {"epoch": epoch + 1, "spec": spec.identity(), "hparams": hparams, "log": rows})
        write_csv(pd.DataFrame(rows), out / "log.csv")
        log.info("%s epoch %d/%d: loss %.4f, train %.2f%%, val %.2f%% (%.1f s)", spec.method, epoch + 1,
                 spec.epochs, row["loss"], row["train_accuracy"], row["val_accuracy"], row["seconds"])
        if stop_after_epoch is not None and epoch + 1 >= stop_after_epoch and epoch + 1 < spec.epochs:
            return row

    weights = out / "model.safetensors"
    state = {k: v.detach().cpu().contiguous() for k, v in model.state_dict().items()}
    atomic_path(weights, lambda tmp: save_file(state, str(tmp)))
    result = {
        "spec": asdict(spec), "hparams": hparams, "vicinity": vicinity_spec,
        "method": {"key": cls.key, "name": cls.name, "citation": cls.citation, "vote": cls.vote},
        "metrics": {"val_accuracy": rows[-1]["val_accuracy"],
                    "train_seconds": float(sum(r["seconds"] for r in rows))},
        "epochs": len(rows), "weights_sha256": sha256(weights), "device": str(device),
        "torch": torch.__version__,
        **({"provenance": provenance} if provenance is not None else {}),
    }
    write_json(result, out / "model.json")
    return result


def _train_epoch(method, trained: nn.Module, model: nn.Module, optimizer, split: Split,
                 batch_size: int, shuffle: torch.Generator, epoch: int, progress: bool) -> dict:
    """One pass over ``split`` in a seeded order; NaN or infinite loss stops with its place."""
    start = time.perf_counter()
    total, seen, correct, counted = 0.0, 0, 0, 0
    terms: dict[str, float] = {}
    bar = tqdm(split.batches(batch_size, shuffle=True, generator=shuffle), total=method.batches_per_epoch,
               desc=f"{method.key} epoch {epoch + 1}", leave=False, disable=not progress)
    for batch, (images, labels) in enumerate(bar):
        method.batch = batch
        trained.train()
        optimizer.zero_grad(set_to_none=True)
        out = method.loss(trained, images, labels)
        if not torch.isfinite(out.loss):
            raise FloatingPointError(
                f"{method.key}: the loss became {out.loss.item()} in epoch {epoch + 1}, batch {batch}; "
                "the last finished epoch's checkpoint is kept, no model was written"
            )
        out.loss.backward()
        method.after_backward(model)
        optimizer.step()
        n = len(labels)
        total += out.loss.item() * n
        seen += n
        for key, value in out.terms.items():
            terms[key] = terms.get(key, 0.0) + float(value) * n
        if out.logits is not None:
            targets = labels if out.targets is None else out.targets
            correct += int((out.logits.detach().argmax(1) == targets).sum())
            counted += len(targets)
    return {
        "epoch": epoch + 1,
        "loss": total / seen,
        **{k: v / seen for k, v in terms.items()},
        "train_accuracy": 100.0 * correct / counted if counted else float("nan"),
        "seconds": time.perf_counter() - start,
        "lr": optimizer.param_groups[0]["lr"],
    }
