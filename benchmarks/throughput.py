"""Images per second and activation memory per image of every architecture: the inputs of
``python -m bench plan --estimate`` (:mod:`bench.workflow.estimate`).

For each architecture of :mod:`bench.models` on each image shape it is used with (28×28×1 and
32×32×3), on the device this runs on, one row per ``phase``:

- ``forward``: the classifier of certification, votes and scoring (forward + argmax, no autograd)
  at ``--eval-batch`` images;
- ``train``: one training image pass (forward, cross-entropy, backward, SGD step) at
  ``--train-batch`` images; an attack's step (forward and backward to the input) costs about
  the same and is counted as one;

each at fp32 (the paper's arithmetic, the default of ``config/paper.yaml``), the median of
``--repeats`` timed rounds after a warm-up, with ``latency_ms``: the median time of one call at
batch 1 in evaluation mode (``forward``: a forward and argmax; ``train``: a forward and a backward
to the input, an attack's step), the floor of every sequential call of an iterative attack;
``job_start_s``: a job process's start, the same on every row of the device (the median of 3
runs of a fresh Python that imports what a Snakemake job imports: its script wrapper, torch,
torchattacks and the engine's job modules, and creates the CUDA context on a GPU);
``activation_mib_per_image``: the per-image
memory of that phase measured by :func:`bench.compute.memory.activation_bytes` (on CUDA the peak
allocated memory; on the CPU the tensors autograd saves, or the largest layer's input and
output without autograd), and ``parameters``.

Rows are appended to ``reports/bench/throughput.csv`` (rows of the same ``device`` replaced), so
one file holds every device measured; ``device`` names it (``cpu: <model>, <threads> threads`` or
the GPU's name).

Run: ``python benchmarks/throughput.py`` (about 3 minutes on 2 CPU cores; seconds on a GPU).
"""
from __future__ import annotations

import argparse
import logging
import platform
import statistics
import subprocess
import sys
import time
from pathlib import Path

import pandas as pd
import torch
import torch.nn.functional as F

from bench.compute.memory import activation_bytes
from bench.data import DATASETS
from bench.io import update_csv
from bench.models import MODELS, count_parameters, create_model

log = logging.getLogger("benchmarks.throughput")
OUT = Path("reports/bench/throughput.csv")
SHAPES = {"28x28": DATASETS["mnist"], "32x32": DATASETS["cifar10"]}


def device_name(device: torch.device) -> str:
    if device.type == "cuda":
        return torch.cuda.get_device_name(device)
    cpu = platform.processor() or platform.machine()
    try:
        cpu = next(line.split(":", 1)[1].strip() for line in open("/proc/cpuinfo") if line.startswith("model name"))
    except (OSError, StopIteration):
        pass
    return f"cpu: {cpu}, {torch.get_num_threads()} threads"


def _sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def _time(step, device: torch.device, batches: int, repeats: int) -> float:
    step()
    _sync(device)
    rounds = []
    for _ in range(repeats):
        start = time.perf_counter()
        for _ in range(batches):
            step()
        _sync(device)
        rounds.append((time.perf_counter() - start) / batches)
    return statistics.median(rounds)


def measure(arch: str, shape: str, device: torch.device, eval_batch: int, train_batch: int, batches: int,
            repeats: int) -> list[dict]:
    info = SHAPES[shape]
    torch.manual_seed(0)
    model = create_model(arch, info).to(device)
    x = torch.rand(max(eval_batch, train_batch), *info.shape, device=device)
    y = torch.randint(0, info.num_classes, (len(x),), device=device)
    opt = torch.optim.SGD(model.parameters(), lr=1e-3, momentum=0.9)
    rows = []

    def forward():
        with torch.no_grad():
            model(x[:eval_batch]).argmax(1)

    def train():
        opt.zero_grad(set_to_none=True)
        F.cross_entropy(model(x[:train_batch]), y[:train_batch]).backward()
        opt.step()

    # one call waits for its result, as an iterative attack's next query must
    def forward_one():
        with torch.no_grad():
            model(x[:1]).argmax(1)
        _sync(device)

    def gradient_one():
        one = x[:1].clone().requires_grad_(True)
        torch.autograd.grad(F.cross_entropy(model(one), y[:1]), one)
        _sync(device)

    for phase, step, one, batch, train_mode in (("forward", forward, forward_one, eval_batch, False),
                                                ("train", train, gradient_one, train_batch, True)):
        model.train(train_mode)
        seconds = _time(step, device, batches, repeats)
        activation_mib = activation_bytes(model, x[:1], train=train_mode) / 2**20  # in the phase's mode
        model.eval()
        latency = _time(one, device, 10 * batches, repeats)
        rows.append({"device": device_name(device), "arch": arch, "shape": shape, "phase": phase, "precision": "fp32",
                     "batch_size": batch, "images_per_s": batch / seconds, "latency_ms": 1000 * latency,
                     "activation_mib_per_image": activation_mib,
                     "parameters": count_parameters(model), "torch": torch.__version__})
        log.info("%s %s %s: %.0f images/s, %.2f ms per call at batch 1", arch, shape, phase,
                 rows[-1]["images_per_s"], rows[-1]["latency_ms"])
    return rows


def job_start_seconds(device: torch.device, runs: int = 3) -> float:
    """The median wall time of a fresh Python importing a job's modules (and, on CUDA, creating
    its context): the part of every job's fixed cost that comes before its first image. Not in
    it: Snakemake's scheduling, loading the data and the weights, writing the outputs; a run's
    ``--measured`` comparison shows what they add. NaN, with a warning, if the probe fails."""
    code = ("import snakemake.script, torch, torchattacks, bench.jobs.attacks, bench.jobs.certify, bench.jobs.train"
            + ("; torch.cuda.init(); torch.zeros(1, device='cuda')" if device.type == "cuda" else ""))
    times = []
    for _ in range(runs):
        start = time.perf_counter()
        done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
        if done.returncode != 0:
            log.warning("the job start-up probe failed, job_start_s not measured: %s", done.stderr[-500:])
            return float("nan")
        times.append(time.perf_counter() - start)
    return statistics.median(times)


def main(argv: list[str] | None = None) -> pd.DataFrame:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--eval-batch", type=int, default=256)
    parser.add_argument("--train-batch", type=int, default=128)
    parser.add_argument("--batches", type=int, default=2)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--archs", nargs="*", default=list(MODELS))
    parser.add_argument("--out", type=Path, default=OUT)
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(message)s", datefmt="%H:%M:%S")
    torch.set_num_threads(args.threads)
    device = torch.device(args.device)
    rows = [r for arch in args.archs for shape in SHAPES
            for r in measure(arch, shape, device, args.eval_batch, args.train_batch, args.batches, args.repeats)]
    new = pd.DataFrame(rows)
    new["job_start_s"] = job_start_seconds(device)
    log.info("a job's start: %.1f s", new["job_start_s"].iloc[0])
    return update_csv(new, args.out)


if __name__ == "__main__":
    main()
