"""Drawing certification's sample streams: each chunk's own call against one apply per batch.

:class:`bench.certification.streams.SampleTape` draws every input's stream in chunks of 32 samples, each from
its own seeded generator. It draws each chunk's noise alone (one generator call) and applies
the noise of a whole batch to its images at once (:meth:`bench.certification.vicinity.Vicinity.apply`); before
f6abb34 each chunk made its samples with the vicinity's own call (for the L∞ box, five kernels:
the draw, its scale and offset, the shift by the image and the clip). Both give the same
samples bit for bit (checked here first; ``tests/test_vicinity.py`` pins the box's formula, and
``tests/test_certify.py`` each chunk's seed). This times the tape's drawing alone, with a
classifier that costs nothing, on ``--inputs`` Fashion-MNIST-sized images, in interleaved rounds.
Writes ``reports/bench/tape_sampling.csv``: per device and path the median round's seconds, the
seconds per chunk, and the speed-up of the batched apply.

Run: ``python benchmarks/tape_sampling.py`` (seconds); on a GPU, ``--device cuda`` adds its rows,
where each small call pays a kernel launch.
"""
from __future__ import annotations

import argparse
import logging
import statistics
import time
from pathlib import Path

import pandas as pd
import torch

from bench.certification.streams import CHUNK, SampleTape
from bench.certification.vicinity import LinfBall, _uniform
from bench.io import update_csv

log = logging.getLogger("benchmarks.tape_sampling")


class PerChunkLinf(LinfBall):
    """The L∞ box as it was before f6abb34, one call for the samples (which the tape then makes
    chunk by chunk, since a class that redefines ``__call__`` gets the default two phases)."""

    def __call__(self, x, n, generator=None):
        noise = _uniform((x.shape[0], n, *x.shape[1:]), -self.eps, self.eps, x, generator)
        return noise.add_(x.unsqueeze(1)).clamp_(0.0, 1.0)


def main(argv: list[str] | None = None) -> pd.DataFrame:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--inputs", type=int, default=200)
    parser.add_argument("--samples", type=int, default=480, help="per input (15 chunks)")
    parser.add_argument("--eps", type=float, default=0.1)
    parser.add_argument("--rounds", type=int, default=7)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--out", type=Path, default=Path("reports/bench/tape_sampling.csv"))
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s: %(message)s", datefmt="%H:%M:%S")
    torch.set_num_threads(args.threads)
    device = torch.device(args.device)
    sync = torch.cuda.synchronize if device.type == "cuda" else (lambda: None)
    x = torch.rand(args.inputs, 1, 28, 28, generator=torch.Generator().manual_seed(0)).to(device)
    paths = {"per-chunk call": PerChunkLinf(args.eps), "batched apply": LinfBall(args.eps)}

    def draw(vicinity: LinfBall, keep: list | None = None) -> None:
        def free(batch: torch.Tensor) -> torch.Tensor:
            if keep is not None:
                keep.append(batch.cpu())
            return torch.zeros(len(batch), dtype=torch.long, device=batch.device)

        tape = SampleTape(free, x, vicinity, batch_size=256, seed=0, num_classes=10)
        tape.reader()(torch.arange(args.inputs), torch.full((args.inputs,), args.samples))
        sync()

    seen = {name: [] for name in paths}
    for name, vicinity in paths.items():
        draw(vicinity, seen[name])  # also the warm-up
    if not all(torch.equal(a, b) for a, b in zip(*seen.values())):
        raise SystemExit("the two paths drew different samples")
    seconds: dict[str, list[float]] = {name: [] for name in paths}
    for _ in range(args.rounds):
        for name, vicinity in paths.items():
            start = time.perf_counter()
            draw(vicinity)
            seconds[name].append(time.perf_counter() - start)
    chunks = args.inputs * -(-args.samples // CHUNK)
    median = {name: statistics.median(s) for name, s in seconds.items()}
    name_of = torch.cuda.get_device_name(device) if device.type == "cuda" else "cpu"
    table = pd.DataFrame([{"device": name_of, "path": name, "median_s": median[name],
                           "min_s": min(seconds[name]), "max_s": max(seconds[name]),
                           "ms_per_chunk": 1e3 * median[name] / chunks, "chunks": chunks,
                           "speedup": median["per-chunk call"] / median[name], "rounds": args.rounds,
                           "threads": args.threads, "torch": torch.__version__} for name in paths])
    table = update_csv(table, args.out)
    log.info("wrote %s\n%s", args.out, table.to_string(index=False))
    return table


if __name__ == "__main__":
    main()
