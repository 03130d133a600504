"""Figures and the self-contained HTML report (reads only the aggregated tables and figures).

- :func:`figure3`: the paper's Figure 3 from training logs: the mean and standard-deviation
  terms of Eq. (5) per epoch, and training and validation accuracy.
- :func:`vicinity_figure`: a clean image beside a few samples of each vicinity used, so that a
  reader sees what each eps and transform means.
- :func:`job_times`: the wall time of every job, from Snakemake's ``benchmark:`` files.
- :func:`html_report`: every table beside the paper's numbers (differences coloured), the
  figures embedded, and provenance (config, git commit, package versions, hardware, job times).
"""
from __future__ import annotations

import base64
import html
import json
import os
import platform
import subprocess
from datetime import datetime, timezone
from importlib import metadata
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import pandas as pd  # noqa: E402
import torch  # noqa: E402

from bench.io import atomic_path, write_csv  # noqa: E402

__all__ = ["EXTRA_TITLES", "figure2", "figure3", "html_report", "job_times", "vicinity_figure"]

TITLES = {
    1: "Table 1: standard accuracy, certified robustness rate, certified robust accuracy (L∞)",
    2: "Table 2: certified robust accuracy under functional perturbations",
    3: "Table 3: defence success rate against AutoAttack",
    4: "Table 4: training and inference time (seconds)",
    9: "Table 9: defence success rate against 25 torchattacks attacks",
    10: "Table 10: certified robust accuracy within the smaller vicinity",
    11: "Table 11: certified robust accuracy against κ (κ = 0: sound IBP bounds)",
    12: "Table 12: certified robust accuracy against the confidence 1−α",
}


#: the outputs beyond the paper (issue 5), the ablation and the sweep's choices
EXTRA_TITLES = {
    "table3_adaptive": "Table 3, adaptive: AutoAttack (rand version, EOT) on the vote itself",
    "table9_adaptive": "Table 9, adaptive: attacks with expectation over the vote's sampling",
    "certificate_audit": "Certificate audit: certified inputs whose fresh-sample rate lies below 1−κ",
    "native_certificates": "Native certificates of the baselines, beside the probabilistic one",
    "masking": "Gradient-masking checks (Carlini et al. 2019); red: flag raised",
    "ablation": "λ ablation (Figure 2's numbers)",
    "arch_selection": "Architecture chosen per method by validation certified robust accuracy (arch: sweep)",
}


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
    for ax, title in zip(axes, ("(a) mean term of Eq. (5)", "(b) standard-deviation term", "(c) accuracy (%)")):
        ax.set_title(title)
        ax.set_xlabel("epoch")
        ax.legend(fontsize=7)
    _save(fig, png, svg)


def figure2(ablation_csv: str, png: str, svg: str) -> None:
    """Figure 2: standard accuracy, certified robust accuracy (per procedure) and AutoAttack
    defence success rate against the ablated hyperparameter (λ by default)."""
    df = pd.read_csv(ablation_csv)
    fig, ax = plt.subplots(figsize=(6, 3.8))
    for (metric, procedure), group in df.groupby(["metric", df["procedure"].fillna("")], sort=False):
        g = group.groupby("hparam_value")["value"].mean()
        label = metric.replace("_", " ") + (f" ({procedure})" if metric == "certified_robust_accuracy" else "")
        # dashed and hollow for the paper's procedure, so that it shows where it equals mixture
        style = {"ls": "--", "mfc": "none", "marker": "s"} if procedure == "paper" else {"marker": "o"}
        ax.plot(g.index, g.values, label=label, **style)
    names = {"lam": "λ"}
    ax.set_xlabel(names.get(df["hparam"].iloc[0], df["hparam"].iloc[0]) if len(df) else "value")
    ax.set_ylabel("%")
    if len(df):
        ax.set_title(f"Figure 2: {df['method'].iloc[0]} against {names.get(df['hparam'].iloc[0], df['hparam'].iloc[0])}")
    ax.legend(fontsize=7)
    _save(fig, png, svg)


def vicinity_figure(images: torch.Tensor, specs: dict[str, str], png: str, samples: int = 5, seed: int = 0) -> None:
    """One row per vicinity: the clean image, then ``samples`` draws from it."""
    from bench.vicinity import parse_vicinity

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


def job_times(paths: list[str], out: str) -> pd.DataFrame:
    """One row per job: its benchmark file's name and wall seconds (Snakemake ``benchmark:``)."""
    rows = []
    for p in paths:
        bench = pd.read_csv(p, sep="\t")
        name = str(Path(p).with_suffix("")).removeprefix("results/benchmarks/")
        rows.append({"job": name, "seconds": float(bench["s"].iloc[0]),
                     "max_rss_mb": float(bench["max_rss"].iloc[0]) if "max_rss" in bench else None})
    df = pd.DataFrame(rows).sort_values("job")
    write_csv(df, out)
    return df


def _img(path: str) -> str:
    data = base64.b64encode(Path(path).read_bytes()).decode()
    return f'<img src="data:image/png;base64,{data}" style="max-width:100%">'


#: (row keys, column keys) of each table, as the paper lays it out
LAYOUT = {
    1: (["method", "dataset"], ["metric", "procedure"]),
    2: (["method", "dataset"], ["transform", "procedure"]),
    3: (["method", "dataset"], ["metric"]),
    4: (["method", "dataset"], ["metric", "procedure"]),
    9: (["attack"], ["method"]),
    10: (["method", "dataset"], ["procedure"]),
    11: (["method", "dataset"], ["kappa", "procedure"]),
    12: (["method", "dataset"], ["confidence", "procedure"]),
}


def _cell(value, paper, colour: bool = True) -> str:
    if pd.isna(value):
        return "<td>–</td>"
    text = f"{value:.2f}"
    if pd.isna(paper):
        return f"<td>{text}</td>"
    diff = value - paper
    style = ""
    if colour:  # percentages: within 2 points green, below red, above blue
        style = ' style="background:' + ("#e6f4ea" if abs(diff) <= 2 else ("#fce8e6" if diff < 0 else "#e8f0fe")) + '"'
    return f'<td{style} title="ours − paper = {diff:+.2f}">{text}<br><small>paper {paper:.2f}</small></td>'


def _table_html(df: pd.DataFrame, number: int) -> str:
    """The table laid out as the paper does (:data:`LAYOUT`), ours beside the paper's value."""
    index, columns = LAYOUT.get(number, (["method", "dataset"], ["metric"]))
    index = [c for c in index if c in df]
    columns = [c for c in columns if c in df and df[c].notna().any()]
    df = df.copy()
    df["_col"] = (df[columns].fillna("").astype(str).agg(lambda r: " / ".join(v for v in r if v), axis=1)
                  if columns else "value")
    cols = list(dict.fromkeys(df["_col"]))
    out = ["<table><tr>" + "".join(f"<th>{html.escape(c)}</th>" for c in index + cols) + "</tr>"]
    for key, group in df.groupby(index, sort=False, dropna=False):
        key = key if isinstance(key, tuple) else (key,)
        cells = "".join(f"<td>{html.escape(str(k))}</td>" for k in key)
        by_col = {r["_col"]: r for r in group.to_dict("records")}
        for c in cols:
            r = by_col.get(c)
            cells += _cell(r["value"], r.get("paper"), colour=number != 4) if r else "<td></td>"
        out.append(f"<tr>{cells}</tr>")
    ref = sorted(set(df.get("paper_dataset", pd.Series(dtype=str)).dropna()) - set(df.get("dataset", pd.Series(dtype=str))))
    note = (f"<p class='note'>Paper values shown are the paper's {', '.join(ref)} figures "
            "(the config's paper_reference, or the only dataset the paper reports), not this dataset.</p>") if ref else ""
    return "\n".join(out) + "</table>" + note


def _provenance(config: dict) -> str:
    try:
        commit = subprocess.run(["git", "rev-parse", "HEAD"], capture_output=True, text=True, check=True).stdout.strip()
        dirty = bool(subprocess.run(["git", "status", "--porcelain"], capture_output=True, text=True).stdout.strip())
    except (OSError, subprocess.CalledProcessError):
        commit, dirty = "unknown", False
    versions = {}
    for pkg in ("torch", "torchvision", "torchattacks", "auto_LiRPA", "snakemake", "scipy", "numpy"):
        try:
            versions[pkg] = metadata.version(pkg)
        except metadata.PackageNotFoundError:
            versions[pkg] = "not installed"
    hardware = {"machine": platform.machine(), "processor": platform.processor() or platform.machine(),
                "cpus": os.cpu_count(), "torch threads": torch.get_num_threads(),
                "python": platform.python_version(),
                "cuda": torch.cuda.get_device_name(0) if torch.cuda.is_available() else "none"}
    rows = [("generated", datetime.now(timezone.utc).isoformat(timespec="seconds")),
            ("git commit", commit + (" (with uncommitted changes)" if dirty else "")),
            *versions.items(), *hardware.items()]
    table = "<table>" + "".join(f"<tr><th>{html.escape(k)}</th><td>{html.escape(str(v))}</td></tr>" for k, v in rows) + "</table>"
    return table + f"<h3>Config</h3><pre>{html.escape(json.dumps(config, indent=2, default=str))}</pre>"


def _masking_html(df: pd.DataFrame) -> str:
    """One row per model, one column per check; a raised flag in red."""
    out = ["<table><tr><th>method</th><th>dataset</th>" + "".join(
        f"<th title='{html.escape(c)}'>{html.escape(k)}</th>"
        for k, c in dict(zip(df["check"], df["compares"])).items()) + "</tr>"]
    for (method, dataset), group in df.groupby(["method", "dataset"], sort=False):
        cells = ""
        for r in group.to_dict("records"):
            flag = r["flag"]
            style = ' style="background:#f4b6b0"' if flag is True or flag == "True" else ""
            text = "–" if pd.isna(r["difference"]) else f"{r['difference']:+.1f}"
            cells += f"<td{style}>{text}</td>"
        out.append(f"<tr><td>{html.escape(method)}</td><td>{html.escape(dataset)}</td>{cells}</tr>")
    tol = df["tolerance"].iloc[0] if len(df) else 0
    return "\n".join(out) + (f"</table><p class='note'>Differences in percentage points of defence success "
                             f"rate; a flag is raised above {tol:g} points (unbounded: the rate itself).</p>")


def _extra_html(name: str, path: str) -> str:
    df = pd.read_csv(path)
    if df.empty:
        return "<p class='note'>No rows (no model needs this output in this config).</p>"
    if name == "masking":
        return _masking_html(df)
    keep = [c for c in df.columns if c not in ("settings", "candidates") or name == "arch_selection"]
    return df[keep].to_html(index=False, float_format=lambda v: f"{v:.4g}", na_rep="–")


def _flags_by_method(extras: dict[str, str]) -> dict[str, list[str]]:
    if "masking" not in extras:
        return {}
    df = pd.read_csv(extras["masking"])
    raised = df[df["flag"].astype(str).eq("True")] if len(df) else df
    return raised.groupby("method")["check"].agg(list).to_dict() if len(raised) else {}


def html_report(tables: dict[int, str], figures: dict[str, str], times: str, config: dict, out: str,
                extras: dict[str, str] | None = None) -> None:
    """Write one self-contained HTML page (images embedded as data URIs).

    ``extras`` maps the names of :data:`EXTRA_TITLES` to their CSV; a model with a raised
    gradient-masking flag gets a red mark beside its rows in every table."""
    extras = extras or {}
    flagged = _flags_by_method(extras)
    parts = ["<!doctype html><html><head><meta charset='utf-8'><title>cpr-bench report</title><style>",
             "body{font-family:sans-serif;max-width:1200px;margin:auto;padding:1em}",
             "table{border-collapse:collapse;margin:1em 0;font-size:13px}",
             "td,th{border:1px solid #ccc;padding:3px 7px;text-align:right}th{background:#f3f3f3}",
             "small{color:#555}.note{font-size:12px;color:#555}pre{background:#f6f6f6;padding:1em;font-size:11px}",
             "</style></head><body><h1>cpr-bench: reproduction of “Towards Certified Probabilistic Robustness with High Accuracy”</h1>",
             "<p>Each cell: our value, with the paper's below it where the paper has one. Green: within 2 points "
             "of the paper; red: below it; blue: above it. <b>paper</b> rows use the paper's re-test-after-every-sample "
             "procedure, which is not a valid sequential test; <b>mixture</b> and <b>sprt</b> rows use valid ones.</p>"]
    for number in sorted(tables):
        df = pd.read_csv(tables[number])
        if flagged and "method" in df:
            df["method"] = df["method"].map(lambda m: f"{m} ⚑ masking: {', '.join(flagged[m])}" if m in flagged else m)
        parts += [f"<h2>{html.escape(TITLES.get(number, f'Table {number}'))}</h2>", _table_html(df, number)]
        adaptive = {3: "table3_adaptive", 9: "table9_adaptive"}.get(number)
        if adaptive in extras:
            parts += [f"<h3>{html.escape(EXTRA_TITLES[adaptive])}</h3>", _extra_html(adaptive, extras[adaptive])]
    for name, path in extras.items():
        if name not in ("table3_adaptive", "table9_adaptive"):
            parts += [f"<h2>{html.escape(EXTRA_TITLES.get(name, name))}</h2>", _extra_html(name, path)]
    for title, path in figures.items():
        parts += [f"<h2>{html.escape(title)}</h2>", _img(path)]
    jt = pd.read_csv(times)
    parts += ["<h2>Provenance</h2>", _provenance(config),
              f"<h3>Wall time of each job (total {jt['seconds'].sum():.0f} s)</h3>",
              jt.to_html(index=False, float_format=lambda v: f"{v:.1f}"), "</body></html>"]
    atomic_path(out, lambda tmp: tmp.write_text("\n".join(parts)))
