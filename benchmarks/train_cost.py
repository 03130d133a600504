"""Cost of one training batch per method, beside the paper's Table 4 ratios.

Each method trains ``--batches`` batches (after ``--warmup``) of ``--batch-size`` offline
Fashion-MNIST images on the paper's MNIST architecture (CNN7 for IBP, the Basic ConvNet
otherwise), with its default hyperparameters; all methods are timed in one run, interleaved
round by round so that machine noise falls on all of them alike. Writes
``reports/bench/train_cost.csv`` with, per method:

- ``seconds_per_batch`` (median over rounds) and ``ratio_to_erm``, beside ``paper_ratio_to_erm``
  from Table 4 (training seconds over ERM's);
- ``images_per_batch``: images forwarded per batch by the method's loss (n vicinity samples, and
  the clean input for ``ours`` and ``prl``);
- ``bare_seconds_per_batch``: forward, cross-entropy, backward and optimiser step of the same
  number of images already in memory (no sampling), and ``data_path_overhead``, the method's
  time over it (for the methods without an attack or bounds);
- ``ours_bound``: for ``ours``, the target 1.1 × (n + 1) × ERM's seconds per batch;
- the settings it was measured with: ``dataset``, ``train_images``, ``batch_size`` (one for all
  methods, so that seconds per batch compare; 32 is the recipe of all but IBP, whose recipe is
  256 on 28×28), ``batches_timed``, ``warmup``, ``threads`` (torch's intra-op threads),
  ``device``, ``torch``, ``date`` (UTC), ``git_commit`` and the machine's 1-minute load average
  at the start and end (other processes on the cores slow small batches, ERM's above all).
  ``n_samples`` and the other hyperparameters are each method's recipe (its ``defaults``, e.g.
  n = 50 for ``ours``).

Run: ``make bench`` (or ``python benchmarks/train_cost.py``).
"""
from __future__ import annotations

import argparse
import datetime
import logging
import os
import platform
import statistics
import time
from pathlib import Path

import pandas as pd
import torch
import torch.nn.functional as F

from bench.certification.vicinity import parse_vicinity
from bench.data import load_split
from bench.io import write_csv
from bench.models import create_model
from bench.paper import paper_table
from bench.training import get_method
from bench.training.loop import default_vicinity, make_optimizer
from bench.workflow.provenance import git_commit

log = logging.getLogger("benchmarks.train_cost")
METHODS = ["erm", "da", "pgdt", "trades", "mart", "rs", "ibp", "prl", "ours"]
SAMPLED = ("da", "prl", "ours")  # methods whose loss forwards n samples (and the clean input: ours, prl)


def cpu_name() -> str:
    """The CPU's model name (from /proc/cpuinfo where there is one) and its core count."""
    try:
        names = [l.split(":", 1)[1].strip() for l in Path("/proc/cpuinfo").read_text().splitlines()
                 if l.startswith("model name")]
    except OSError:
        names = []
    return f"cpu: {names[0] if names else platform.machine()}, {os.cpu_count()} cores"


class Runner:
    """One method's training state, stepped one batch at a time."""

    def __init__(self, key: str, split, batch_size: int, seed: int = 0):
        torch.manual_seed(seed)
        info = split.info
        self.key = key
        self.arch = "cnn7" if key == "ibp" else "convnet"
        cls = get_method(key)
        self.method = cls(cls.resolve_hparams(info), info, parse_vicinity(default_vicinity(info)),
                          torch.Generator().manual_seed(seed))
        self.model = create_model(self.arch, info)
        self.images, self.labels = split.images, split.labels
        self.batch_size = batch_size
        self.trained = self.method.prepare(self.model, self.images[:batch_size])
        self.optimizer, _ = self.method.optimizer(self.model, self.arch)
        self.method.batches_per_epoch = len(self.images) // batch_size
        self.step_index = 0

    def step(self) -> float:
        b = self.step_index % self.method.batches_per_epoch
        x = self.images[b * self.batch_size : (b + 1) * self.batch_size]
        y = self.labels[b * self.batch_size : (b + 1) * self.batch_size]
        self.method.batch = b
        start = time.perf_counter()
        self.trained.train()
        self.optimizer.zero_grad(set_to_none=True)
        out = self.method.loss(self.trained, x, y)
        out.loss.backward()
        self.method.after_backward(self.model)
        self.optimizer.step()
        self.step_index += 1
        return time.perf_counter() - start

    @property
    def n_samples(self) -> int | None:
        return int(self.method.hparams["n_samples"]) if "n_samples" in self.method.hparams else None

    def images_per_batch(self) -> int:
        """Images the loss forwards per batch: the method's own count per image (n draws, plus
        the clean input for ``ours`` and for ``prl`` with ``include_clean``) for the sampled ones."""
        return self.batch_size * self.method.inputs_per_image() if self.key in SAMPLED else self.batch_size


class Bare:
    """Forward, cross-entropy, backward and step on a fixed in-memory batch (no data path)."""

    def __init__(self, split, images: int, seed: int = 0):
        torch.manual_seed(seed)
        self.model = create_model("convnet", split.info)
        self.optimizer, _ = make_optimizer(self.model, "convnet", split.info)
        reps = -(-images // len(split.images))
        self.x = split.images.repeat(reps, 1, 1, 1)[:images].clone()
        self.y = split.labels.repeat(reps)[:images].clone()

    def step(self) -> float:
        start = time.perf_counter()
        self.model.train()
        self.optimizer.zero_grad(set_to_none=True)
        F.cross_entropy(self.model(self.x), self.y).backward()
        self.optimizer.step()
        return time.perf_counter() - start


def main(argv: list[str] | None = None) -> pd.DataFrame:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--methods", nargs="+", default=METHODS)
    p.add_argument("--batch-size", type=int, default=32)
    p.add_argument("--batches", type=int, default=6)
    p.add_argument("--warmup", type=int, default=2)
    p.add_argument("--threads", type=int, default=2)
    p.add_argument("--out", type=Path, default=Path("reports/bench/train_cost.csv"))
    args = p.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s: %(message)s", datefmt="%H:%M:%S")
    torch.set_num_threads(args.threads)

    device = cpu_name()
    load_start = os.getloadavg()[0] if hasattr(os, "getloadavg") else float("nan")
    date = datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")
    split = load_split("fashion_mnist", "train", subset_per_class=30)
    runners = {k: Runner(k, split, args.batch_size) for k in args.methods}
    bare = {k: Bare(split, r.images_per_batch()) for k, r in runners.items() if k in SAMPLED or k in ("erm", "rs")}
    times: dict[str, list[float]] = {k: [] for k in [*runners, *(f"bare:{k}" for k in bare)]}
    for round_ in range(args.warmup + args.batches):
        for key, runner in runners.items():
            t = runner.step()
            tb = bare[key].step() if key in bare else None
            if round_ >= args.warmup:
                times[key].append(t)
                if tb is not None:
                    times[f"bare:{key}"].append(tb)
        log.info("round %d/%d done", round_ + 1, args.warmup + args.batches)

    load_end = os.getloadavg()[0] if hasattr(os, "getloadavg") else float("nan")
    paper = paper_table(4).set_index("method")["train_seconds"]
    erm = statistics.median(times["erm"]) if "erm" in times else float("nan")
    rows = []
    for key, runner in runners.items():
        sec = statistics.median(times[key])
        bare_sec = statistics.median(times[f"bare:{key}"]) if key in bare else None
        n = runner.n_samples
        rows.append({
            "method": key,
            "arch": runner.arch,
            "n_samples": n,
            "images_per_batch": runner.images_per_batch(),
            "seconds_per_batch": sec,
            "ratio_to_erm": sec / erm,
            "paper_ratio_to_erm": float(paper[key] / paper["erm"]),
            "bare_seconds_per_batch": bare_sec,
            "data_path_overhead": sec / bare_sec if bare_sec else None,
            "ours_bound": 1.1 * (n + 1) * erm if key == "ours" else None,
            "batch_size": args.batch_size,
            "batches_timed": args.batches,
            "warmup": args.warmup,
            "threads": torch.get_num_threads(),
            "dataset": "fashion_mnist",
            "train_images": len(split.images),
            "device": device,
            "torch": torch.__version__,
            "date": date,
            "git_commit": git_commit(),
            "load_average_start": load_start,
            "load_average_end": load_end,
        })
    table = pd.DataFrame(rows)
    write_csv(table, args.out)
    log.info("wrote %s\n%s", args.out, table.to_string(index=False))
    return table


if __name__ == "__main__":
    main()
