"""In-place ReLUs (the architectures' default) against out-of-place ones, side by side.

For each architecture, the same weights with their ``nn.ReLU`` modules in place and out of
place: the classifier's forward (eval mode, no autograd, channels_last as the default config
runs it) at ``--batch`` images, timed in interleaved rounds on ``--threads`` threads. Writes
``reports/bench/inplace_relu.csv``: per architecture and setting the best round's images per
second, and the speed-up of in place. The outputs are checked equal first
(``tests/test_models.py`` checks gradients and bounds too).

Run: ``python benchmarks/inplace_relu.py`` (about a minute on 2 cores).
"""
from __future__ import annotations

import argparse
import copy
import logging
import time
from pathlib import Path

import pandas as pd
import torch

from bench.data import DATASETS
from bench.io import write_csv
from bench.models import create_model

log = logging.getLogger("benchmarks.inplace_relu")


def main(argv: list[str] | None = None) -> pd.DataFrame:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--archs", nargs="+", default=["convnet", "cnn7"])
    parser.add_argument("--batch", type=int, default=256)
    parser.add_argument("--batches", type=int, default=5, help="batches per timed round")
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--threads", type=int, default=1, help="one, as each job of the default DAG")
    parser.add_argument("--out", type=Path, default=Path("reports/bench/inplace_relu.csv"))
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s: %(message)s", datefmt="%H:%M:%S")
    torch.set_num_threads(args.threads)
    rows = []
    for arch in args.archs:
        info = DATASETS["fashion_mnist"]
        torch.manual_seed(0)
        inplace = create_model(arch, info).eval().to(memory_format=torch.channels_last)
        plain = copy.deepcopy(inplace)
        for m in plain.modules():
            if isinstance(m, torch.nn.ReLU):
                m.inplace = False
        x = torch.rand(args.batch, info.channels, info.image_size, info.image_size).contiguous(
            memory_format=torch.channels_last)
        models = {"in place": inplace, "out of place": plain}
        seconds: dict[str, list[float]] = {k: [] for k in models}
        with torch.inference_mode():
            assert torch.equal(inplace(x), plain(x)), arch
            for _ in range(args.rounds):
                for name, model in models.items():
                    start = time.perf_counter()
                    for _ in range(args.batches):
                        model(x)
                    seconds[name].append(time.perf_counter() - start)
        best = {k: args.batches * args.batch / min(v) for k, v in seconds.items()}
        for name, rate in best.items():
            rows.append({"arch": arch, "setting": name, "images_per_s": rate,
                         "speedup": rate / best["out of place"], "batch": args.batch, "threads": args.threads,
                         "rounds": args.rounds, "torch": torch.__version__})
        log.info("%s: %s", arch, {k: round(v) for k, v in best.items()})
    table = pd.DataFrame(rows)
    write_csv(table, args.out)
    log.info("wrote %s\n%s", args.out, table.to_string(index=False))
    return table


if __name__ == "__main__":
    main()
