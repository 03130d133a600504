"""Precision and memory-format options (bench.compute.precision), measured side by side in one run.

Writes ``reports/bench/precision.csv``, a long table with one row per measurement (``kind``):

- ``throughput``: images per second of the Basic ConvNet and CNN7 on 28×28 Fashion-MNIST
  images, for ``inference`` (the classifier of :func:`bench.certification.streams.classifier`: forward and
  argmax, no autograd) and ``training`` (forward, cross-entropy, backward and the paper's
  optimiser step, the loss under autocast), each in fp32, bf16, fp32 + channels_last and
  bf16 + channels_last. All settings are timed in one run, interleaved round by round so that
  machine noise falls on all of them alike: ``--warmup`` rounds, then ``--repeats`` rounds of
  ``--batches`` batches; ``value`` is the median over repeats, ``q25``/``q75`` its spread,
  ``speedup`` the median over fp32's of the same arch and phase.
- ``test_accuracy``: the same short training run (``--method`` on the Basic ConvNet,
  :func:`bench.training.loop.train`) in fp32 and in bf16 for each of ``--seeds`` seeds, each model
  evaluated at its own precision on the same test images: accuracy (``value``, percent) with its
  95% Clopper–Pearson interval; every row but fp32's carries McNemar's exact test against fp32
  of the same seed on the same images (``p_value``; ``a_only``: right only in fp32, ``b_only``:
  right only in the row's model). Two more rows: fp32 + channels_last (same arithmetic, another
  rounding order: a control for how much any rounding change moves a training run) and the
  first seed's fp32 model evaluated in bf16 (inference precision alone, same model).
- ``accuracy_difference``: per setting, the mean over seeds of its accuracy minus fp32's
  (percentage points), with ``min``/``max`` over seeds and ``fp32_seed_sd``, the standard
  deviation of fp32's accuracy over the seeds: the noise to judge the difference by.
- ``agreement``: the fp32-trained model's predictions on ``--inputs`` × ``--samples`` draws of
  the vicinity (``--vicinity``), computed at each setting against fp32: the fraction agreeing
  (``value``, percent) with its 95% Clopper–Pearson interval.

Every row names the ``device`` it was measured on (``--device``: ``cpu``, the default, or
``cuda``); rows of other devices already in ``--out`` are kept, so the CPU's and a GPU's
measurements sit in one file. On a GPU the timed batches end with a synchronise.

Run: ``python benchmarks/precision.py`` (about 3–5 minutes on 2 cores).
"""
from __future__ import annotations

import argparse
import logging
import tempfile
import time
from pathlib import Path

import numpy as np
import pandas as pd
import torch
import torch.nn.functional as F
from throughput import _sync, device_name  # benchmarks/throughput.py, beside this file

from bench.certification.engine import classifier
from bench.certification.vicinity import parse_vicinity
from bench.compute.precision import Precision, autocast, prepare_input, prepare_model
from bench.data import load_split
from bench.io import update_csv
from bench.models import create_model
from bench.stats import clopper_pearson, mcnemar_exact
from bench.training.loop import TrainSpec, load_model, make_optimizer, train

log = logging.getLogger("benchmarks.precision")

SETTINGS = [Precision("fp32"), Precision("bf16"), Precision("fp32", True), Precision("bf16", True)]


def label(p: Precision) -> str:
    return p.dtype + ("+channels_last" if p.channels_last else "")


class Timed:
    """One (arch, phase, precision) setting, stepped one batch at a time."""

    def __init__(self, arch: str, phase: str, precision: Precision, images: torch.Tensor,
                 labels: torch.Tensor, info, seed: int = 0):
        torch.manual_seed(seed)
        self.arch, self.phase, self.precision = arch, phase, precision
        self.model = prepare_model(create_model(arch, info).to(images.device), precision)
        self.x, self.y = images, labels
        if phase == "inference":
            self.predict = classifier(self.model, precision)
        else:
            self.optimizer, _ = make_optimizer(self.model, arch, info)

    def step(self) -> None:
        if self.phase == "inference":
            self.predict(self.x)
            return
        self.model.train()
        self.optimizer.zero_grad(set_to_none=True)
        with autocast(self.x.device, self.precision):
            loss = F.cross_entropy(self.model(prepare_input(self.x, self.precision)), self.y)
        loss.backward()
        self.optimizer.step()


def throughput(args, info, images: torch.Tensor, labels: torch.Tensor) -> list[dict]:
    runners = [Timed(arch, phase, p, images, labels, info)
               for arch in args.archs for phase in ("inference", "training") for p in SETTINGS]
    rates: dict[int, list[float]] = {i: [] for i in range(len(runners))}
    for round_ in range(args.warmup + args.repeats):
        for i, r in enumerate(runners):
            start = time.perf_counter()
            for _ in range(args.batches):
                r.step()
            _sync(images.device)
            seconds = time.perf_counter() - start
            if round_ >= args.warmup:
                rates[i].append(args.batches * len(images) / seconds)
        log.info("throughput round %d/%d done", round_ + 1, args.warmup + args.repeats)
    rows = []
    for i, r in enumerate(runners):
        q25, med, q75 = np.percentile(rates[i], [25, 50, 75])
        rows.append({"kind": "throughput", "arch": r.arch, "phase": r.phase, "setting": label(r.precision),
                     "precision": r.precision.dtype, "channels_last": r.precision.channels_last,
                     "value": float(med), "unit": "images/s", "q25": float(q25), "q75": float(q75)})
    base = {(row["arch"], row["phase"]): row["value"] for row in rows if row["setting"] == "fp32"}
    for row in rows:
        row["speedup"] = row["value"] / base[(row["arch"], row["phase"])]
    return rows


@torch.inference_mode()
def predictions(model, images: torch.Tensor, precision: Precision, batch_size: int) -> torch.Tensor:
    predict = classifier(model, precision)
    device = next(model.parameters()).device
    return torch.cat([predict(images[i : i + batch_size].to(device)).cpu()
                      for i in range(0, len(images), batch_size)])


def accuracy_effect(args, test) -> tuple[list[dict], torch.nn.Module]:
    """Train the same short run in fp32 and bf16 for each of ``--seeds`` seeds; test accuracy of
    each, McNemar against fp32 of the same seed, and the paired differences over seeds.

    The noise the bf16 difference is judged against: the seed-to-seed spread of fp32 (each seed
    changes initialisation, batch order, vicinity draws and the train/validation cut), and
    fp32 + channels_last on the first seed: the same arithmetic in another rounding order, i.e.
    how far training drifts from any rounding change at all. The fp32 model of the first seed is
    also evaluated in bf16: the effect of inference precision alone, on one and the same model."""
    seeds = [args.seed + i for i in range(args.seeds)]
    variants = [(dtype, Precision(dtype), seed) for seed in seeds for dtype in ("fp32", "bf16")]
    variants.append(("fp32+channels_last", Precision("fp32", True), seeds[0]))
    rows, correct, first_fp32 = [], {}, None
    with tempfile.TemporaryDirectory() as tmp:
        for name, p, seed in variants:
            spec = TrainSpec(dataset="fashion_mnist", method=args.method, arch="convnet", seed=seed,
                             epochs=args.epochs, batch_size=args.train_batch_size,
                             train_per_class=args.train_per_class, val_per_class=10, device=args.device,
                             precision=p.dtype, channels_last=p.channels_last)
            run = Path(tmp) / f"run{len(rows)}"
            start = time.perf_counter()
            result = train(spec, run, progress=False)
            seconds = time.perf_counter() - start
            model = load_model(run, args.device)
            evaluations = [(name, p)]
            if name == "fp32" and first_fp32 is None:
                first_fp32 = model
                evaluations.append(("fp32-trained, bf16 inference", Precision("bf16")))
            for label_, q in evaluations:
                pred = predictions(model, test.images, q, args.batch_size)
                correct[label_, seed] = (pred == test.labels).numpy()
                k, n = int(correct[label_, seed].sum()), len(test)
                lo, hi = clopper_pearson(k, n)
                row = {"kind": "test_accuracy", "arch": "convnet", "phase": "training", "setting": label_,
                       "precision": q.dtype, "channels_last": q.channels_last, "method": args.method,
                       "seed": seed, "value": 100.0 * k / n, "unit": "percent", "ci_low": lo, "ci_high": hi,
                       "k": k, "n": n, "train_seconds": seconds, "train_images": args.train_per_class * 10,
                       "epochs": args.epochs, "val_accuracy": result["metrics"]["val_accuracy"]}
                if label_ != "fp32":  # McNemar against fp32 of the same seed, on the same test images
                    test_ = mcnemar_exact(correct["fp32", seed], correct[label_, seed])
                    row.update({"p_value": test_["p"], "a_only": test_["a_only"], "b_only": test_["b_only"]})
                rows.append(row)
                log.info("%s seed %d: trained in %.1f s, test accuracy %.2f%% [%.2f, %.2f]%s", label_, seed,
                         seconds, 100 * k / n, lo, hi,
                         f", McNemar vs fp32 p = {row['p_value']:.3g}" if "p_value" in row else "")
    acc = {(r["setting"], r["seed"]): r["value"] for r in rows}
    fp32 = np.array([acc["fp32", s] for s in seeds])
    for name in ("bf16", "fp32+channels_last", "fp32-trained, bf16 inference"):
        diffs = np.array([acc[name, s] - acc["fp32", s] for s in seeds if (name, s) in acc])
        rows.append({"kind": "accuracy_difference", "arch": "convnet", "setting": f"{name} minus fp32",
                     "method": args.method, "value": float(diffs.mean()), "unit": "percentage points",
                     "min": float(diffs.min()), "max": float(diffs.max()), "k": len(diffs),
                     "fp32_seed_sd": float(fp32.std(ddof=1)) if len(fp32) > 1 else float("nan")})
    return rows, first_fp32


def agreement(args, model, test) -> list[dict]:
    """Predictions at each setting against fp32 on the same vicinity draws."""
    gen = torch.Generator().manual_seed(args.seed)
    inputs = parse_vicinity(args.vicinity).flat(test.images[: args.inputs], args.samples, gen)
    reference = predictions(model, inputs, Precision("fp32"), args.batch_size)
    rows = []
    for p in SETTINGS[1:]:
        copy = create_model("convnet", test.info).to(args.device)
        copy.load_state_dict(model.state_dict())
        same = predictions(copy.eval(), inputs, p, args.batch_size) == reference
        k, n = int(same.sum()), len(same)
        lo, hi = clopper_pearson(k, n)
        rows.append({"kind": "agreement", "arch": "convnet", "phase": "inference", "setting": label(p),
                     "precision": p.dtype, "channels_last": p.channels_last, "method": args.method,
                     "value": 100.0 * k / n, "unit": "percent agreeing with fp32", "ci_low": lo, "ci_high": hi,
                     "k": k, "n": n, "vicinity": args.vicinity})
        log.info("%s vs fp32 on %d vicinity samples: %.2f%% agree [%.2f, %.2f]", label(p), n, 100 * k / n, lo, hi)
    return rows


def main(argv: list[str] | None = None) -> pd.DataFrame:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--archs", nargs="+", default=["convnet", "cnn7"])
    p.add_argument("--batch-size", type=int, default=256)
    p.add_argument("--batches", type=int, default=2, help="batches per timed repeat")
    p.add_argument("--warmup", type=int, default=2)
    p.add_argument("--repeats", type=int, default=7)
    p.add_argument("--threads", type=int, default=2)
    p.add_argument("--device", default="cpu", help="cpu or cuda[:N]")
    p.add_argument("--method", default="ours")
    p.add_argument("--epochs", type=int, default=2)
    p.add_argument("--train-per-class", type=int, default=50)
    p.add_argument("--train-batch-size", type=int, default=32)
    p.add_argument("--test-per-class", type=int, default=300)
    p.add_argument("--vicinity", default="linf:0.1")
    p.add_argument("--inputs", type=int, default=100)
    p.add_argument("--samples", type=int, default=50, help="vicinity draws per input")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--seeds", type=int, default=3, help="training seeds for the accuracy effect")
    p.add_argument("--out", type=Path, default=Path("reports/bench/precision.csv"))
    args = p.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s: %(message)s", datefmt="%H:%M:%S")
    torch.set_num_threads(args.threads)
    start = time.perf_counter()

    test = load_split("fashion_mnist", "test", subset_per_class=args.test_per_class)
    batch = load_split("fashion_mnist", "train", subset_per_class=-(-args.batch_size // 10))
    device = torch.device(args.device)
    images = batch.images[: args.batch_size].contiguous().to(device)
    labels = batch.labels[: args.batch_size].to(device)

    rows = throughput(args, batch.info, images, labels)
    acc_rows, model = accuracy_effect(args, test)
    rows += acc_rows + agreement(args, model, test)

    table = pd.DataFrame(rows)
    table.insert(0, "device", device_name(device))
    table["batch_size"] = args.batch_size
    table["threads"] = args.threads
    table["torch"] = torch.__version__
    table = update_csv(table, args.out)
    log.info("wrote %s in %.0f s\n%s", args.out, time.perf_counter() - start, table.to_string(index=False))
    return table


if __name__ == "__main__":
    main()
