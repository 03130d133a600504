"""``python -m bench demo``: train a small model offline with the paper's method and certify it."""
from __future__ import annotations

import argparse
import logging
import time

import pandas as pd

from bench import data as bdata
from bench.certification.engine import CertifyConfig, certify, classifier, summarize
from bench.certification.vicinity import parse_vicinity
from bench.io import write_csv
from bench.stats import clopper_pearson
from bench.training import get_method
from bench.training.loop import TrainSpec, accuracy, load_model, resolve_device, train

log = logging.getLogger("bench")


def cmd_demo(args: argparse.Namespace) -> None:
    start = time.perf_counter()
    defaults = get_method(args.method).resolve_hparams(bdata.dataset_info(args.dataset))
    hparams = {"n_samples": args.samples} if "n_samples" in defaults else {}
    spec = TrainSpec(dataset=args.dataset, method=args.method, arch=args.arch, seed=args.seed,
                     epochs=args.epochs, vicinity=args.vicinity, hparams=hparams,
                     train_per_class=args.train_per_class, val_per_class=20, device=args.device,
                     data_root=None if args.root is None else str(args.root))
    run_dir = args.out / "model"
    train(spec, run_dir)
    device = resolve_device(args.device)
    model = load_model(run_dir, device)
    test = bdata.load_split(args.dataset, "test", args.root, subset_per_class=args.test_per_class).to(device)
    log.info("clean test accuracy on %d inputs: %.2f%%", len(test), accuracy(model, test))
    vicinity = parse_vicinity(args.vicinity)
    rows = []
    for procedure in args.procedures:
        cfg = CertifyConfig(kappa=args.kappa, alpha=args.alpha, procedure=procedure, budget=args.budget)
        result, clean = certify(classifier(model), test.images, vicinity, test.info.num_classes,
                                cfg, seed=args.seed)
        frame = result.frame(test.labels, clean)
        write_csv(frame, args.out / f"certify_{procedure}.csv")
        rows.append({"method": args.method, "procedure": procedure, "vicinity": args.vicinity,
                     "kappa": args.kappa, "alpha": args.alpha, **summarize(frame)})
    summary = pd.DataFrame(rows)
    for metric in ("standard_accuracy", "certified_robustness_rate", "certified_robust_accuracy"):
        bounds = [clopper_pearson(round(v * n / 100), n) for v, n in zip(summary[metric], summary["inputs"])]
        summary[f"{metric}_ci_low"], summary[f"{metric}_ci_high"] = zip(*bounds)
    write_csv(summary, args.out / "summary.csv")
    log.info("demo finished in %.0f s; results in %s (summary.csv: every column)\n%s", time.perf_counter() - start,
             args.out, _readable(summary, args))


def _readable(summary: pd.DataFrame, args: argparse.Namespace) -> str:
    """The summary in a terminal's width: one row per procedure, each metric as value [95 % CI],
    and what each procedure is (``paper`` is not a valid test at the stated α)."""
    from bench.cli.certify import PROCEDURE_NOTES

    short = {"standard_accuracy": "accuracy", "certified_robustness_rate": "certified rate",
             "certified_robust_accuracy": "certified robust acc."}
    table = pd.DataFrame({"procedure": summary["procedure"], "inputs": summary["inputs"],
                          **{label: [f"{v:.1f} [{lo:.1f}, {hi:.1f}]" for v, lo, hi in
                                     zip(summary[m], summary[f"{m}_ci_low"], summary[f"{m}_ci_high"])]
                             for m, label in short.items()},
                          "mean samples": summary["mean_samples"].round(0).astype(int)})
    notes = "\n".join(f"  {p}: {PROCEDURE_NOTES[p]}" for p in summary["procedure"] if p in PROCEDURE_NOTES)
    return (f"{args.method} on {args.dataset}, vicinity {args.vicinity}, κ = {args.kappa}, α = {args.alpha} "
            f"(% of test inputs, exact 95 % intervals)\n{table.to_string(index=False)}\n{notes}")
