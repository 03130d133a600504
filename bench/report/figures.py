"""Figures of the report: the paper's Figures 2 and 3 and the vicinity samples (read only the
aggregated tables and the training logs).

- :func:`figure3`: the paper's Figure 3 from training logs: the mean and standard-deviation
  terms of Eq. (5) per epoch, and training and validation accuracy.
- :func:`figure2`: the λ ablation, each rate with its 95 % interval as an error bar.
- :func:`vicinity_figure`: a clean image beside a few samples of each vicinity used, so that a
  reader sees what each eps and transform means.
"""
from __future__ import annotations

from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import pandas as pd  # noqa: E402
import torch  # noqa: E402
from matplotlib.ticker import MaxNLocator  # noqa: E402

from bench.io import atomic_path  # noqa: E402

__all__ = ["figure2", "figure3", "vicinity_figure"]


def _save(fig, png: str | Path, svg: str | Path | None = None) -> None:
    atomic_path(png, lambda tmp: fig.savefig(tmp, format="png", dpi=120, bbox_inches="tight"))
    if svg:
        atomic_path(svg, lambda tmp: fig.savefig(tmp, format="svg", bbox_inches="tight"))
    plt.close(fig)


def figure3(logs: dict[str, str], png: str, svg: str) -> None:
    """Figure 3: per-epoch mean and std terms and accuracies; ``logs`` maps a label to log.csv."""
    fig, axes = plt.subplots(1, 3, figsize=(13, 3.6))
    for label, path in logs.items():
        log = pd.read_csv(path)
        for ax, col in zip(axes[:2], ("mean", "std")):
            if col in log:
                ax.plot(log["epoch"], log[col], marker="o", label=label)
        axes[2].plot(log["epoch"], log["train_accuracy"], marker="o", label=f"{label} train")
        axes[2].plot(log["epoch"], log["val_accuracy"], marker="s", ls="--", label=f"{label} val")
    titles = ("(a) mean term of Eq. (5)", "(b) standard-deviation term", "(c) accuracy")
    ylabels = ("mean cross-entropy (nats)", "std of cross-entropy (nats)", "accuracy (%)")
    epochs = sorted({e for path in logs.values() for e in pd.read_csv(path)["epoch"]})
    for ax, title, ylabel in zip(axes, titles, ylabels):
        ax.set_title(title)
        ax.set_xlabel("epoch")
        ax.set_ylabel(ylabel)
        if len(epochs) <= 12:  # epochs are whole numbers: a tick at each
            ax.set_xticks(epochs)
        else:
            ax.xaxis.set_major_locator(MaxNLocator(integer=True))
        ax.legend(fontsize=7)
    fig.tight_layout()
    _save(fig, png, svg)


def figure2(ablation_csv: str, png: str, svg: str) -> None:
    """Figure 2: standard accuracy, certified robust accuracy (per procedure) and AutoAttack
    defence success rate against the ablated hyperparameter (λ by default)."""
    df = pd.read_csv(ablation_csv)
    fig, ax = plt.subplots(figsize=(6, 3.8))
    series = list(df.groupby(["metric", df["procedure"].fillna("")], sort=False))
    # each series nudged sideways by a little of the λ range, so that equal values and their
    # error bars do not hide one another (the ticks stay at the values run)
    span = float(df["hparam_value"].max() - df["hparam_value"].min()) if len(df) else 0.0
    for i, ((metric, procedure), group) in enumerate(series):
        g = group.groupby("hparam_value")[[c for c in ("value", "ci_low", "ci_high") if c in group]].mean()
        label = metric.replace("_", " ") + (f" ({procedure})" if metric == "certified_robust_accuracy" else "")
        # dashed and hollow for the paper's procedure, so that it shows where it equals mixture
        style = {"ls": "--", "mfc": "none", "marker": "s"} if procedure == "paper" else {"marker": "o"}
        err = ([g["value"] - g["ci_low"], g["ci_high"] - g["value"]] if "ci_low" in g else None)
        shift = 0.012 * (span or 1.0) * (i - (len(series) - 1) / 2)
        ax.errorbar(g.index + shift, g["value"], yerr=err, label=label, capsize=3, **style)
    names = {"lam": "λ"}
    ax.set_xlabel(names.get(df["hparam"].iloc[0], df["hparam"].iloc[0]) if len(df) else "value")
    ax.set_ylabel("% of test inputs (95% interval)")
    if len(df):
        ax.set_title(f"Figure 2: {df['method'].iloc[0]} against {names.get(df['hparam'].iloc[0], df['hparam'].iloc[0])}")
    if 0 < df["hparam_value"].nunique() <= 12:  # a tick at each value run (else matplotlib's)
        ax.set_xticks(sorted(df["hparam_value"].unique()))
    ax.legend(fontsize=7, loc="upper left", bbox_to_anchor=(1.02, 1), borderaxespad=0)  # beside, not over, the data
    _save(fig, png, svg)


def vicinity_figure(images: torch.Tensor, specs: dict[str, str], png: str, samples: int = 5, seed: int = 0) -> None:
    """One row per vicinity: the clean image, then ``samples`` draws from it."""
    from bench.certification.vicinity import parse_vicinity

    gen = torch.Generator().manual_seed(seed)
    fig, axes = plt.subplots(len(specs), samples + 1, figsize=(1.4 * (samples + 1), 1.5 * len(specs)), squeeze=False)
    x = images[:1]
    for row, (name, spec) in enumerate(specs.items()):
        draws = parse_vicinity(spec)(x, samples, gen)[0]
        for col, img in enumerate([x[0], *draws]):
            ax = axes[row, col]
            arr = img.permute(1, 2, 0).numpy()
            ax.imshow(arr.squeeze(-1) if arr.shape[-1] == 1 else arr, cmap="gray", vmin=0, vmax=1)
            ax.set_xticks([])
            ax.set_yticks([])
            if col == 0:
                ax.set_ylabel(f"{name}\n{spec}", fontsize=7)
        axes[0, 0].set_title("clean", fontsize=8)
    _save(fig, png)
