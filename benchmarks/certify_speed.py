"""Speed of certification: the batched engine against bare forward passes and the literal loop.

Trains one fixed small model (Basic ConvNet, method ``da``, seed 0) on the offline
Fashion-MNIST data, then certifies ``--inputs`` test images under each procedure and writes
``reports/bench/certify.csv``, one row per procedure:

- ``engine_seconds``: :func:`bench.certification.engine.certify`, sampling and the tests included;
- ``forward_seconds``: bare forward passes of as many images as the test counted
  (``samples_used``), in the engine's batch size, on images already in memory;
- ``overhead_vs_forward``: the engine's time over the bare forwards'. With ``--rounds R`` the
  two are timed back to back R times (``make bench`` uses 3): the row gives the median of each,
  and of the rounds' ratios, with the ratios' range (``overhead_min``, ``overhead_max``);
- ``literal_seconds``: Algorithm 2 as written (one sample, one forward, two ``binomtest`` calls
  at a time, :func:`bench.certification.engine.literal_algorithm2`) timed on ``--literal-inputs`` inputs and
  scaled by samples to this procedure's ``samples_used``.

Run: ``make bench`` (or ``python benchmarks/certify_speed.py --rounds 3``); on a GPU,
``python benchmarks/certify_speed.py --device cuda`` adds that GPU's rows to the same file (the
rows of other devices and procedures are kept; ``device`` is ``cpu`` or the GPU's name). On a
GPU a single image's forward is mostly launch latency, which is where batching should pay most,
and where the per-chunk sampling of the streams (one generator call per 32 samples) costs most.
"""
from __future__ import annotations

import argparse
import logging
import statistics
import time
from pathlib import Path

import pandas as pd
import torch

from bench import data as bdata
from bench.certification.engine import (
    CertifyConfig,
    certify,
    classifier,
    default_batch_size,
    literal_algorithm2,
    summarize,
)
from bench.certification.sequential import n_min
from bench.certification.vicinity import parse_vicinity
from bench.io import update_csv
from bench.training.loop import TrainSpec, load_model, train

log = logging.getLogger("benchmarks.certify_speed")


def forward_seconds(model, shape, total: int, batch_size: int, device: torch.device) -> float:
    """Seconds of bare forward passes over ``total`` images (argmax included; each call waits
    for its result, as the engine's do: :func:`bench.certification.streams.classifier` checks the logits)."""
    batch = torch.rand(batch_size, *shape, device=device)
    predict = classifier(model)
    predict(batch[:8])  # warm-up
    start = time.perf_counter()
    done = 0
    while done < total:
        m = min(batch_size, total - done)
        predict(batch[:m])
        done += m
    return time.perf_counter() - start


def literal_per_sample(model, images, vicinity, kappa, alpha, budget, seed) -> tuple[float, int]:
    """Seconds per sample of the literal Algorithm 2 loop over ``images``; and samples drawn."""
    predict = classifier(model)
    gen = torch.Generator(device=images.device).manual_seed(seed)
    samples = 0
    start = time.perf_counter()
    for x in images:
        draw = lambda: int(predict(vicinity.flat(x.unsqueeze(0), 1, gen))[0])
        samples += literal_algorithm2(draw, kappa, alpha, budget)[1]
    return (time.perf_counter() - start) / samples, samples


def main(argv: list[str] | None = None) -> pd.DataFrame:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--inputs-per-class", type=int, default=20)
    p.add_argument("--literal-inputs", type=int, default=6)
    p.add_argument("--vicinity", default="linf:0.1")
    p.add_argument("--procedures", nargs="+", default=["paper", "sprt", "mixture"])
    p.add_argument("--batch-size", type=int, default=None, help="default: bench.certification.streams.default_batch_size")
    p.add_argument("--budget", type=int, default=20_000)
    p.add_argument("--rounds", type=int, default=1,
                   help="engine and bare forwards timed one after the other this many times; the "
                        "row reports each one's median and the median of the rounds' ratios")
    p.add_argument("--threads", type=int, default=2)
    p.add_argument("--device", default="cpu", help="cpu, or cuda on a GPU")
    p.add_argument("--data-root", default=None, help="data root (default: $BENCH_DATA or ./data)")
    p.add_argument("--out", type=Path, default=Path("reports/bench/certify.csv"))
    p.add_argument("--model-dir", type=Path, default=Path("results/bench/certify_model"),
                   help="where the fixed model is trained (reused when present)")
    args = p.parse_args(argv)
    if args.rounds < 1:
        p.error(f"--rounds must be at least 1, got {args.rounds}")
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s: %(message)s", datefmt="%H:%M:%S")
    torch.set_num_threads(args.threads)

    device = torch.device(args.device)
    batch_size = args.batch_size or default_batch_size(device)
    spec = TrainSpec(dataset="fashion_mnist", method="da", arch="convnet", seed=0, epochs=2,
                     vicinity=args.vicinity, hparams={"n_samples": 2}, train_per_class=300,
                     val_per_class=20, device="cpu", data_root=args.data_root)  # the same model whatever device certifies
    train(spec, args.model_dir)
    model = load_model(args.model_dir).to(device)
    test = bdata.load_split("fashion_mnist", "test", args.data_root, subset_per_class=args.inputs_per_class)
    test.images = test.images.to(device)
    vicinity = parse_vicinity(args.vicinity)
    kappa = alpha = 0.01

    lit_per_sample, lit_samples = literal_per_sample(
        model, test.images[: args.literal_inputs], vicinity, kappa, alpha, args.budget, seed=0)
    log.info("literal loop: %.2f ms per sample over %d samples", 1e3 * lit_per_sample, lit_samples)

    rows = []
    for procedure in args.procedures:
        cfg = CertifyConfig(kappa=kappa, alpha=alpha, procedure=procedure, budget=args.budget,
                            batch_size=batch_size)
        # each round times both, back to back: on a shared machine, speed drifts by tens of
        # percent between minutes, and a ratio of two times taken minutes apart carries that drift
        engines, fwds = [], []
        for _ in range(args.rounds):
            start = time.perf_counter()
            result, clean = certify(classifier(model), test.images, vicinity, 10, cfg, seed=0, progress=False)
            engines.append(time.perf_counter() - start)
            frame = result.frame(test.labels, clean)
            used = int(frame["samples"].sum())
            fwds.append(forward_seconds(model, test.info.shape, used + len(test), batch_size, device))
        engine, fwd = statistics.median(engines), statistics.median(fwds)
        ratios = [e / f for e, f in zip(engines, fwds)]
        overhead = statistics.median(ratios)
        cert = frame[frame["outcome"].eq("certified")]
        literal = lit_per_sample * used
        rows.append({
            "procedure": procedure,
            "inputs": len(test),
            "certified": len(cert),
            "n_min": n_min(kappa, alpha) if procedure != "sprt" else cfg.make_test().min_certify,
            "min_samples_per_certified": int(cert["samples"].min()) if len(cert) else None,
            "mean_samples_per_certified": float(cert["samples"].mean()) if len(cert) else None,
            "samples_used": used,
            "samples_drawn": result.drawn,
            "engine_seconds": engine,
            "forward_seconds": fwd,
            "overhead_vs_forward": overhead,
            "overhead_min": min(ratios),
            "overhead_max": max(ratios),
            "rounds": args.rounds,
            "literal_seconds": literal,
            "literal_measured_samples": lit_samples,
            "speedup_vs_literal": literal / engine,
            **{k: v for k, v in summarize(frame).items() if k != "inputs"},
            "threads": args.threads,
            "batch_size": batch_size,
            "device": torch.cuda.get_device_name(device) if device.type == "cuda" else "cpu",
        })
        log.info("%s: engine %.1f s, forward %.1f s, ratio %.3f (rounds %d), speed-up vs literal %.0f×",
                 procedure, engine, fwd, overhead, args.rounds, literal / engine)
    table = pd.DataFrame(rows)
    table = update_csv(table, args.out, keys=("device", "procedure"))
    log.info("wrote %s\n%s", args.out, table.to_string(index=False))
    return table


if __name__ == "__main__":
    main()
