"""The training loop: one method, one architecture, one dataset, resumable from checkpoints.

``train(spec, out_dir)`` trains ``spec.method`` on ``spec.arch`` and writes, under ``out_dir``:

- ``checkpoint.safetensors`` + ``checkpoint.json`` after every epoch (weights, optimiser and RNG
  states; :mod:`bench.models.checkpoint`): a killed run resumes from there and ends with the same
  weights as an uninterrupted one on the CPU;
- ``log.csv``: one row per epoch: loss, the method's named loss terms (the mean and standard
  deviation of Eq. (5) for ``ours``), training and validation accuracy, seconds, learning rate;
- ``model.safetensors`` + ``model.json`` once training has finished, never before: their
  presence means a finished model.

``spec.precision`` (``"fp32"`` or ``"bf16"``) and ``spec.channels_last`` set how the forward
passes run (:mod:`bench.compute.precision`): the method's loss runs under autocast; the weights, their
gradients and the optimiser step stay fp32 (bfloat16 needs no loss scaling). The hot loop
does not wait for the device: the loss, the loss terms and the training accuracy stay on the
device until the epoch ends, and the NaN/inf check runs every :data:`FINITE_CHECK_EVERY` batches
(it still names the first bad batch).

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

from bench.certification.vicinity import parse_vicinity
from bench.compute.device import resolve_device
from bench.compute.precision import FP32, Precision, autocast, configure_backends, prepare_input, prepare_model
from bench.data import DatasetInfo, Split, dataset_info, load_split
from bench.io import atomic_path, write_csv, write_json
from bench.models import create_model
from bench.models.checkpoint import load_checkpoint, load_model, save_checkpoint, sha256
from bench.paper import check_compatible
from bench.paths import model_file
from bench.training import get_method, load_plugin, shape_group
from bench.training.augment import augment
from bench.training.augment import resolve as augment_resolve
from bench.training.optim import make_optimizer

log = logging.getLogger(__name__)

__all__ = ["TrainSpec", "accuracy", "default_vicinity", "load_model", "make_optimizer", "resolve_device",
           "train"]

#: Table 1's radii per shape group; Fashion-MNIST's own: the usual L∞ budget of the robustness
#: literature for it (Wong & Kolter 2018, locuslab/convex_adversarial examples/fashion_mnist.py
#: --epsilon 0.1; CROWN-IBP config/fashion-mnist_crown.json "epsilon": 0.1)
DEFAULT_VICINITY = {"28x28": "linf:0.3", "32x32": "linf:8/255", "fashion_mnist": "linf:0.1"}

#: the loop checks the losses for NaN/inf once per this many batches (and at the epoch's end),
#: so that it does not wait for the device after every batch
FINITE_CHECK_EVERY = 50


def default_vicinity(info: DatasetInfo) -> str:
    """Table 1's vicinity: L∞ 0.3 on 28×28 data, 8/255 on 32×32 data; L∞ 0.1 on Fashion-MNIST."""
    return DEFAULT_VICINITY.get(info.name) or DEFAULT_VICINITY[shape_group(info)]


@torch.inference_mode()
def accuracy(model: nn.Module, split: Split, batch_size: int = 1024, precision: Precision | str | None = None) -> float:
    """Standard accuracy in percent: argmax of the logits on the clean images, the forward passes
    at ``precision`` (default fp32); counted on the device, one transfer at the end."""
    model.eval()
    p = Precision.of(precision)
    correct = torch.zeros((), dtype=torch.long, device=split.labels.device)
    for x, y in split.batches(batch_size):
        with autocast(x.device, p):
            logits = model(prepare_input(x, p))
        correct += (logits.argmax(1) == y).sum()
    return 100.0 * int(correct) / max(1, len(split))


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
    precision: str = "fp32"  # "bf16": forward passes under bfloat16 autocast (bench.compute.precision)
    channels_last: bool = False  # NHWC memory format for the model and its batches
    augment: str = "recipe"  # training-batch augmentation (bench.training.augment): recipe, none, crop4+flip

    def identity(self) -> dict:
        """The fields that must match for a checkpoint to be resumed (not device or paths)."""
        d = asdict(self)
        for key in ("device", "data_root", "epochs"):
            d.pop(key)
        return d

    def numerics(self) -> Precision:
        """The run's :class:`bench.compute.precision.Precision`."""
        return Precision.of(self.precision, self.channels_last)


#: identity fields added after checkpoints were first written, with the value older runs had
_IDENTITY_DEFAULTS = {"precision": FP32.dtype, "channels_last": FP32.channels_last, "augment": "none"}


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
    problems = cls.range_problems(hparams)  # the config check's ranges, for a spec that skipped it
    if problems:
        raise ValueError(f"method '{spec.method}': " + "; ".join(
            f"{name} = {hparams[name]!r} {why}; allowed: {cls.ranges[name]}" for name, why in problems.items()))
    numerics = spec.numerics()
    if numerics.reduced and cls.native_certificate == "bounds":
        raise ValueError(f"precision {spec.precision!r} is not available for method '{spec.method}': its loss "
                         "computes interval bounds (bench.models.lirpa), which stay IEEE fp32; use precision 'fp32'")
    vicinity = spec.vicinity or default_vicinity(info)
    parse_vicinity(vicinity)
    augment_resolve(spec.augment, info)  # refuses an unknown name before any work
    return cls, info, hparams, vicinity


def train(spec: TrainSpec, out_dir: str | Path, progress: bool = True,
          stop_after_epoch: int | None = None, provenance: dict | None = None,
          stale_checkpoint: str = "refuse") -> dict:
    """Train (or resume, or return the finished result of) the run ``spec`` in ``out_dir``.

    A checkpoint in ``out_dir`` that belongs to other settings is refused
    (``stale_checkpoint="refuse"``), or discarded so that training starts over (``"restart"``:
    what the DAG's training job does, since Snakemake reruns it exactly when its settings or
    code changed, and the checkpoint left from before is then of the old ones).

    ``provenance`` (:func:`bench.workflow.provenance.record`) is stored in ``model.json`` as given.
    ``stop_after_epoch`` ends the process-level run after that epoch, as a kill would (tests).
    Returns the final ``model.json`` content, or the last log row when stopped early.
    """
    out = Path(out_dir)
    cls, info, hparams, vicinity_spec = _resolve(spec)
    if model_file(out, "model").exists():
        log.info("%s: already trained", out)
        return json.loads(model_file(out, "model").read_text())
    out.mkdir(parents=True, exist_ok=True)
    device = resolve_device(spec.device)
    configure_backends(device, train=True)
    numerics = spec.numerics()
    with autocast(device, numerics):  # refuses a device that cannot run this precision, before any work
        pass
    torch.manual_seed(spec.seed)
    root = spec.data_root
    train_split = load_split(spec.dataset, "train", root, subset_per_class=spec.train_per_class,
                             seed=spec.seed).to(device)
    val_split = load_split(spec.dataset, "val", root, subset_per_class=spec.val_per_class,
                           seed=spec.seed).to(device)

    model = prepare_model(create_model(spec.arch, info).to(device), numerics)
    shuffle = torch.Generator().manual_seed(spec.seed)
    noise = torch.Generator(device=device).manual_seed(spec.seed + 1)
    method = cls(hparams, info, parse_vicinity(vicinity_spec), noise)
    method.epochs = spec.epochs
    trained = method.prepare(model, train_split.images[: spec.batch_size])
    optimizer, scheduler = method.optimizer(model, spec.arch)
    augmentation = augment_resolve(spec.augment, info)
    crops = torch.Generator(device=device).manual_seed(spec.seed + 2)
    generators = {"shuffle": shuffle, "noise": noise, "augment": crops}

    rows: list[dict] = []
    start_epoch = 0
    stem = out / "checkpoint"
    if stem.with_suffix(".json").exists():
        saved = json.loads(stem.with_suffix(".json").read_text())
        old, code = saved["spec"], (provenance or {}).get("code")
        other_code = code is not None and saved.get("code") != code  # written by other training code
        # A longer run resumes a shorter one's checkpoint, unless the method's schedule is
        # stretched to the run's length (IBP's): then the shorter run's epochs are not a prefix.
        other_length = cls.schedule_scales_with_epochs and saved.get("run_epochs") != spec.epochs
        if {**_IDENTITY_DEFAULTS, **old} != spec.identity() or other_code or other_length:
            if stale_checkpoint != "restart":
                raise ValueError(f"{stem}.json belongs to another run: {old}, code {saved.get('code')}, "
                                 f"{saved.get('run_epochs')} epochs (this run: {spec.identity()}, code {code}, "
                                 f"{spec.epochs} epochs)")
            log.warning("%s.json is of other settings or code (%s, %s); starting over", stem, old, saved.get("code"))
            for suffix in (".json", ".safetensors"):
                stem.with_suffix(suffix).unlink(missing_ok=True)
    if stem.with_suffix(".json").exists():
        meta = load_checkpoint(stem, model, optimizer, generators)
        start_epoch, rows = meta["epoch"], meta["log"]
        scheduler.last_epoch = start_epoch
        log.info("%s: resuming after epoch %d", out, start_epoch)

    n_batches = -(-len(train_split) // spec.batch_size)
    method.batches_per_epoch = n_batches
    for epoch in range(start_epoch, spec.epochs):
        method.epoch = epoch
        row = _train_epoch(method, trained, model, optimizer, train_split, spec.batch_size, shuffle,
                           epoch, progress, numerics, lambda x: augment(augmentation, x, crops))
        scheduler.step()
        row["val_accuracy"] = accuracy(model, val_split, precision=numerics)
        rows.append(row)
        save_checkpoint(stem, model, optimizer, generators,
                        {"epoch": epoch + 1, "spec": spec.identity(), "run_epochs": spec.epochs, "hparams": hparams,
                         "log": rows, "code": (provenance or {}).get("code")})
        write_csv(pd.DataFrame(rows), model_file(out, "log"))
        log.info("%s epoch %d/%d: loss %.4f, train %.2f%%, val %.2f%% (%.1f s)", spec.method, epoch + 1,
                 spec.epochs, row["loss"], row["train_accuracy"], row["val_accuracy"], row["seconds"])
        if stop_after_epoch is not None and epoch + 1 >= stop_after_epoch and epoch + 1 < spec.epochs:
            return row

    write_csv(pd.DataFrame(rows), model_file(out, "log"))  # again: a rerun resumed at the last epoch has no loop pass
    weights = model_file(out, "weights")
    state = {k: v.detach().cpu().contiguous() for k, v in model.state_dict().items()}
    atomic_path(weights, lambda tmp: save_file(state, str(tmp)))
    result = {
        "spec": asdict(spec), "hparams": hparams, "vicinity": vicinity_spec,
        "method": {"key": cls.key, "name": cls.name, "citation": cls.citation, "vote": cls.vote},
        "metrics": {"val_accuracy": rows[-1]["val_accuracy"],
                    "train_seconds": float(sum(r["seconds"] for r in rows))},
        "epochs": len(rows), "weights_sha256": sha256(weights), "device": str(device),
        "torch": torch.__version__,
        # the training's own GPU peak (the provenance given was recorded before it ran)
        **({"provenance": {**provenance, "gpu_peak_mib": round(torch.cuda.max_memory_allocated(device) / 2**20, 1)}
            if device.type == "cuda" else provenance} if provenance is not None else {}),
    }
    write_json(result, model_file(out, "model"))
    return result


def _train_epoch(method, trained: nn.Module, model: nn.Module, optimizer, split: Split,
                 batch_size: int, shuffle: torch.Generator, epoch: int, progress: bool,
                 numerics: Precision = FP32, augment_batch=lambda x: x) -> dict:
    """One pass over ``split`` in a seeded order; NaN or infinite loss stops with its place.

    The losses are checked every :data:`FINITE_CHECK_EVERY` batches and at the end, and also
    before any other error leaves the loop (a non-finite loss may be its cause); the error names
    the first bad batch. See :func:`_run_batches` for the step itself.
    """
    start = time.perf_counter()
    tally = _EpochTally(method.key, epoch, split.labels.device)
    try:
        _run_batches(method, trained, model, optimizer, split, batch_size, shuffle, epoch, progress,
                     numerics, tally, augment_batch)
    except Exception:
        tally.check()  # a NaN loss before the error explains it: report that
        raise
    tally.check()
    return {
        "epoch": epoch + 1,
        **tally.row(),
        "seconds": time.perf_counter() - start,
        "lr": optimizer.param_groups[0]["lr"],
    }


def _run_batches(method, trained: nn.Module, model: nn.Module, optimizer, split: Split,
                 batch_size: int, shuffle: torch.Generator, epoch: int, progress: bool,
                 numerics: Precision, tally: "_EpochTally", augment_batch=lambda x: x) -> None:
    """The training steps of one epoch. The method's loss and the backward pass it runs are under
    :func:`bench.compute.precision.autocast` at ``numerics`` (each backward op runs in its forward op's
    dtype; the gradients land in the fp32 weights' ``.grad``); ``after_backward`` and the
    optimiser step run outside it, in fp32. Nothing here waits for the device (``tally`` keeps
    the figures)."""
    bar = tqdm(split.batches(batch_size, shuffle=True, generator=shuffle), total=method.batches_per_epoch,
               desc=f"{method.key} epoch {epoch + 1}", leave=False, disable=not progress)
    for batch, (images, labels) in enumerate(bar):
        method.batch = batch
        images = prepare_input(augment_batch(images), numerics)
        trained.train()
        optimizer.zero_grad(set_to_none=True)
        with autocast(split.labels.device, numerics):
            out = method.loss_and_backward(trained, images, labels)  # its backward runs inside
        method.after_backward(model)
        optimizer.step()
        tally.add(out, labels)


class _EpochTally:
    """An epoch's loss, loss terms and training accuracy, kept on the device until it ends.

    Each batch's loss (detached), its terms (tensors stay on the device; floats are kept as
    they are) and its count of correct predictions are stored without waiting for the device;
    :meth:`check` looks for a NaN or infinite loss among the batches not yet checked (one wait)
    and :meth:`row` brings the epoch's figures over in one transfer. The figures are the same as
    when they were summed batch by batch on the host: float64 sums, in the same order.
    """

    def __init__(self, key: str, epoch: int, device: torch.device):
        self.key, self.epoch, self.device = key, epoch, device
        self.losses: list[torch.Tensor] = []
        self.sizes: list[int] = []
        self.terms: list[dict] = []
        self.correct = torch.zeros((), dtype=torch.long, device=device)
        self.counted = 0
        self.checked = 0  # batches whose loss was checked to be finite

    def add(self, out, labels: torch.Tensor) -> None:
        """Record one batch's :class:`bench.training.method.LossOutput`; check every FINITE_CHECK_EVERY."""
        self.losses.append(out.loss.detach())
        self.sizes.append(len(labels))
        self.terms.append({k: v.detach() if isinstance(v, torch.Tensor) else v for k, v in out.terms.items()})
        if out.logits is not None:
            targets = labels if out.targets is None else out.targets
            self.correct += (out.logits.detach().argmax(1) == targets).sum()
            self.counted += len(targets)
        if len(self.losses) - self.checked >= FINITE_CHECK_EVERY:
            self.check()

    def check(self) -> None:
        """FloatingPointError naming the first unchecked batch whose loss is NaN or infinite."""
        if self.checked >= len(self.losses):
            return
        chunk = torch.stack([x.reshape(-1)[0] for x in self.losses[self.checked:]])
        bad = ~torch.isfinite(chunk)
        if bool(bad.any()):
            first = int(bad.nonzero()[0, 0])
            raise FloatingPointError(
                f"{self.key}: the loss became {float(chunk[first])} in epoch {self.epoch + 1}, batch "
                f"{self.checked + first}; the last finished epoch's checkpoint is kept, no model was written"
            )
        self.checked = len(self.losses)

    def row(self) -> dict:
        """``loss``, the mean of each term and ``train_accuracy`` (percent) over the epoch."""
        tensors = [v for terms in self.terms for v in terms.values() if isinstance(v, torch.Tensor)]
        stacked = [x.detach().reshape(()).to(self.device) for x in (*self.losses, *tensors)]
        values = iter(torch.stack(stacked).to(torch.float64).tolist() if stacked else [])
        total = sum(next(values) * n for n in self.sizes)
        sums: dict[str, float] = {}
        for terms, n in zip(self.terms, self.sizes):
            for key, value in terms.items():
                v = next(values) if isinstance(value, torch.Tensor) else float(value)
                sums[key] = sums.get(key, 0.0) + v * n
        seen = sum(self.sizes)
        correct = int(self.correct)
        return {
            "loss": total / seen,
            **{k: v / seen for k, v in sums.items()},
            "train_accuracy": 100.0 * correct / self.counted if self.counted else float("nan"),
        }
