"""The self-contained HTML report (reads only the aggregated tables and figures).

- :func:`job_times`: the wall time of every job, from Snakemake's ``benchmark:`` files.
- :func:`html_report`: every enabled table of :data:`bench.tables.TABLES` laid out as the
  paper does, each rate with its 95 % interval, the best method per column in bold and the
  methods not significantly below it marked as ties (McNemar's exact test on the paired test
  inputs), the paper's value beside ours; the figures embedded; provenance (config, git commit,
  package versions, hardware, job times), and a warning on any table whose rows were computed
  by different versions of the code.
"""
from __future__ import annotations

import base64
import html
import json
import os
import platform
from datetime import datetime, timezone
from pathlib import Path

import pandas as pd

from bench.io import atomic_path, write_csv
from bench.paths import benchmark_job
from bench.stats import LEVEL
from bench.workflow.provenance import git_commit, package_versions

__all__ = ["html_report", "job_times", "method_label"]


def job_times(paths: list[str], out: str) -> pd.DataFrame:
    """One row per job: its benchmark file's name and wall seconds (Snakemake ``benchmark:``)."""
    rows = []
    for p in paths:
        bench = pd.read_csv(p, sep="\t")
        rows.append({"job": benchmark_job(p), "seconds": float(bench["s"].iloc[0]),
                     "max_rss_mb": float(bench["max_rss"].iloc[0]) if "max_rss" in bench else None})
    df = pd.DataFrame(rows, columns=["job", "seconds", "max_rss_mb"]).sort_values("job")
    write_csv(df, out)
    return df


def _img(path: str) -> str:
    data = base64.b64encode(Path(path).read_bytes()).decode()
    return f'<img src="data:image/png;base64,{data}" style="max-width:100%" alt="{html.escape(Path(path).stem)}">'


def _cell(r: dict, colour: bool, rate: bool) -> str:
    """Our value [95 % interval], bold if best in its column, '≈' if tied with the best; the
    paper's value below it (coloured only where it is the same dataset's)."""
    value = r.get("value")
    if value is None or pd.isna(value):
        return "<td>–</td>"
    text = f"{value:.2f}" if rate else f"{value:.3g}"
    verdict = r.get("vs_best")
    if verdict == "best":
        text = f"<b>{text}</b>"
    elif verdict == "tie":
        text = f"≈{text}"
    if rate and pd.notna(r.get("ci_low")):
        text += f" <small>[{r['ci_low']:.1f}, {r['ci_high']:.1f}]</small>"
    title = []
    if pd.notna(r.get("successes")):
        title.append(f"{int(r['successes'])} of {int(r['inputs'])} inputs")
    if verdict in ("tie", "worse"):
        title.append(f"vs best: McNemar exact p = {r['vs_best_p']:.3g} ({verdict})")
    paper, style = r.get("paper"), ""
    if paper is not None and pd.notna(paper):
        same = r.get("paper_dataset", r.get("dataset")) == r.get("dataset")
        diff = value - paper
        if colour and same:  # within 2 points green, below red, above blue
            style = ' style="background:' + ("#e6f4ea" if abs(diff) <= 2 else ("#fce8e6" if diff < 0 else "#e8f0fe")) + '"'
        ref = "" if same else f" ({r.get('paper_dataset')})"
        text += f"<br><small>paper{ref} {paper:.2f}</small>"
        title.append(f"ours − paper = {diff:+.2f}")
    tip = f' title="{html.escape("; ".join(title))}"' if title else ""
    return f"<td{style}{tip}>{text}</td>"


# a column key whose values are bare numbers, named in the column header
_KEY_LABELS = {"kappa": "κ = {}", "confidence": "1−α = {}"}
#: what an attack row's target (``protocol``) and inference rule (``inference``) mean, in words:
#: ``paper`` is the paper's protocol (the attack crafted on the bare network), not a procedure
_VALUE_LABELS = {
    "protocol": {"paper": "attack on the network (the paper's protocol)", "adaptive": "adaptive attack on the vote (EOT)",
                 "transfer": "transferred attack", "check": "masking check"},
    "inference": {"argmax": "scored by argmax", "vote": "scored by vote"},
}


def _key_label(key: str, value) -> str:
    """A column key's value as its header shows it: metric names in words, κ = 0.1 rather than 0.1."""
    if value is None or pd.isna(value) or value == "":
        return ""
    text = f"{value:g}" if isinstance(value, float) else str(value)
    if key in _VALUE_LABELS:
        return _VALUE_LABELS[key].get(text, text)
    if key in ("metric", "procedure"):
        text = text.replace("_", " ")
    return _KEY_LABELS.get(key, "{}").format(text)


def method_label(key: object) -> str:
    """A method's name as the paper writes it (its class's ``name``: "Ours", "PGDT", "DA + vote"),
    the config key beside it where the name does not contain it; a key that names no registered
    method (Figure 2's "ours lam=1") as it is."""
    from bench.registry import UnknownKey
    from bench.training import get_method

    try:
        name = getattr(get_method(str(key)), "name", None)
    except UnknownKey:
        name = None
    if not name:
        return str(key)
    return name if str(key).lower() in name.lower() else f"{name} ({key})"


#: what tells a table's rows apart besides its layout: the model (bench.tables.base.MODEL_KEYS,
#: an external checkpoint) and the settings of the certification tables
_IDENTITY = ["method", "dataset", "arch", "seed", "external", "vicinity", "kappa", "confidence", "attack",
             "protocol", "inference", "metric"]
#: what must agree across the merged keys: the value, its count and its comparison with the best
_AGREE = ["value", "successes", "best", "vs_best", "vs_best_p"]


def _merge_shared(df: pd.DataFrame, shared: dict[str, list[str]]) -> pd.DataFrame:
    """One column for a metric that does not depend on some column keys (standard accuracy, on
    the certification procedure): where every model's rows of the metric agree across those
    keys (value, count and comparison with the best), keep one and blank the keys; where any
    differs, keep them all."""
    for metric, keys in shared.items():
        keys = [k for k in keys if k in df]
        rows = df["metric"].eq(metric) if "metric" in df else pd.Series(False, index=df.index)
        if not keys or not rows.any():
            continue
        part = df[rows]
        rest = [c for c in _IDENTITY if c in part and c not in keys]
        agree = [c for c in _AGREE if c in part]
        if part.groupby(rest, dropna=False)[agree].nunique(dropna=False).le(1).all().all():
            kept = part.drop_duplicates(rest).copy()
            kept[keys] = None
            df = pd.concat([df[~rows], kept]).sort_index()
    return df


def _row_keys(df: pd.DataFrame, rows: list[str]) -> list[str]:
    """The layout's row keys, and the model's architecture and seed where the table has several:
    a run with three seeds shows three rows per method, not one cell overwritten twice."""
    return [c for c in rows if c in df] + [c for c in ("arch", "seed") if c not in rows and c in df
                                            and df[c].nunique(dropna=False) > 1]


def _layout_html(df: pd.DataFrame, rows: list[str], columns: list[str], rate: bool, colour: bool,
                 shared: dict[str, list[str]] | None = None) -> str:
    """The table laid out as the paper does (``rows`` × ``columns``), ours above the paper's value;
    a metric in ``shared`` shown once across the column keys it does not depend on."""
    index = _row_keys(df, rows)
    df = _merge_shared(df.copy(), shared or {})
    columns = [c for c in columns if c in df and df[c].notna().any()]
    df["_col"] = (df[columns].apply(lambda r: " / ".join(v for v in (_key_label(c, r[c]) for c in columns) if v),
                                    axis=1) if columns else "value")
    cols = list(dict.fromkeys(df["_col"]))
    out = ["<table class='sortable'><thead><tr>" + "".join(f"<th>{html.escape(c)}</th>" for c in index + cols)
           + "</tr></thead><tbody>"]
    for key, group in df.groupby(index, sort=False, dropna=False):
        key = key if isinstance(key, tuple) else (key,)
        cells = "".join(f"<td>{html.escape(str(k))}</td>" for k in key)
        by_col = {r["_col"]: r for r in group.to_dict("records")}
        cells += "".join(_cell(by_col[c], colour, rate) if c in by_col else "<td></td>" for c in cols)
        out.append(f"<tr>{cells}</tr>")
    return "\n".join(out) + "</tbody></table>"


#: the colour of each verdict of a claim (bench.paper.claims)
VERDICT_COLOURS = {"supported": "#e6f4ea", "contradicted": "#fce8e6", "not decided": "#fff8e1",
                   "not comparable": "#eeeeee"}


def _claims_html(df: pd.DataFrame) -> str:
    """One row per claim, dataset and procedure: the verdict, the effect with its interval, the
    test, the smallest effect the run could detect, and the paper's own effect."""
    def num(v: object, fmt: str = "{:+.2f}") -> str:
        return "–" if v is None or pd.isna(v) else fmt.format(v)

    rows = []
    for r in df.to_dict("records"):
        colour = VERDICT_COLOURS.get(r.get("verdict"), "")
        # a claim on training time is a ratio of times (Table 4), the others a difference in points
        fmt, detect = ("{:.2f}×", "{:.2f}×") if r.get("unit") == "×" else ("{:+.2f}", "{:.1f}")
        effect = (f"{num(r.get('effect'), fmt)} <small>[{num(r.get('ci_low'), fmt)}, {num(r.get('ci_high'), fmt)}]</small>"
                  if pd.notna(r.get("effect", float("nan"))) else "–")
        paper = num(r.get("paper_effect"), fmt)
        if paper != "–" and r.get("paper_dataset") != r.get("dataset"):
            paper += f" <small>({html.escape(str(r.get('paper_dataset')))})</small>"
        rows.append(
            f"<tr><td style='text-align:left' title='{html.escape(str(r.get('source', '')))}'>"
            f"{html.escape(str(r['statement']))}</td><td>{html.escape(str(r['dataset']))}</td>"
            f"<td>{html.escape('–' if pd.isna(r.get('procedure')) or not r.get('procedure') else str(r['procedure']))}</td>"
            f"<td style='background:{colour}'><b>{html.escape(str(r['verdict']))}</b><br>"
            f"<small>{html.escape(str(r.get('why', '')))}</small></td><td>{effect}</td>"
            f"<td>{num(r.get('p_value'), '{:.2g}')}</td><td>{num(r.get('detectable'), detect)}</td>"
            f"<td>{paper}</td><td style='text-align:left'><small>{html.escape(str(r.get('test', '') or ''))}</small></td></tr>")
    return ("<table class='sortable'><thead><tr><th>claim</th><th>dataset</th><th>procedure</th><th>verdict</th>"
            "<th>effect (points; × for a ratio of training times) [95 % CI]</th><th>p</th>"
            "<th>detectable at 80 % power</th>"
            "<th>paper's effect</th><th>test</th></tr></thead><tbody>" + "".join(rows) + "</tbody></table>"
            "<p class='note'>Verdicts: <b>supported</b>, the interval lies on the paper's side; <b>contradicted</b>, "
            "it excludes the paper's direction or, on a dataset the paper reports, its effect size; <b>not "
            "decided</b>, neither (the run is too small for the effect: see the detectable effect); <b>not "
            "comparable</b>, the two methods are scored by different inference rules or attack targets. A ratio of "
            "training times is this run's machine's, beside the paper's ratio on its 2080 Ti; one seed gives it no "
            "interval. "
            "The paper's effect on another dataset is shown for reference, not used.</p>")


def _masking_html(df: pd.DataFrame) -> str:
    """One row per model, one column per check; a raised flag in red, with the paired counts."""
    out = ["<table><tr><th>method</th><th>dataset</th>" + "".join(
        f"<th title='{html.escape(c)}'>{html.escape(k.replace('_', ' '))}</th>"
        for k, c in dict(zip(df["check"], df["compares"])).items()) + "</tr>"]
    for (method, dataset), group in df.groupby(["method", "dataset"], sort=False):
        cells = ""
        for r in group.to_dict("records"):
            flag = r["flag"] is True or str(r["flag"]) == "True"
            style = ' style="background:#f4b6b0"' if flag else ""
            if pd.isna(r["difference"]):
                cells += "<td>–</td>"
                continue
            counts = (f"<br><small>{int(r['only_suspicious'])} vs {int(r['only_reference'])}"
                      + (f", p = {r['p']:.2g}" if pd.notna(r["p"]) else "") + "</small>") \
                if pd.notna(r.get("only_suspicious")) else ""
            cells += f"<td{style}>{r['difference']:+.1f}{counts}</td>"
        out.append(f"<tr><td>{html.escape(method)}</td><td>{html.escape(dataset)}</td>{cells}</tr>")
    return "\n".join(out) + ("</table><p class='note'>Differences in percentage points of defence success "
                             "rate (unbounded: the rate itself). Below each: the inputs only the suspicious attack "
                             "leaves correct vs the inputs only the reference attack leaves correct, and McNemar's "
                             "exact one-sided p-value; a flag is raised at p &lt; 0.05 (unbounded: any survivor).</p>")


def _plain_html(df: pd.DataFrame) -> str:
    """The rows as they are; a column with one value in every row is stated once below instead."""
    keep = [c for c in df.columns if c not in ("settings", "job", "code", "model_code", "git_commit")]
    same = [c for c in keep if len(df) > 1 and df[c].nunique(dropna=False) == 1]
    body = df[[c for c in keep if c not in same]].to_html(index=False, float_format=lambda v: f"{v:.4g}",
                                                          na_rep="–", classes="sortable")
    value = {c: df[c].iloc[0] for c in same}
    note = "; ".join(f"{c} = " + ("–" if pd.isna(v) else f"{v:.4g}" if isinstance(v, float) else str(v))
                     for c, v in value.items())
    return body + (f"<p class='note'>Every row: {html.escape(note)}.</p>" if same else "")


def _code_warning(df: pd.DataFrame) -> str:
    """A warning when a table mixes results that jobs of the same kind computed with different
    code (the ``code`` stamp per job kind; ``model_code``: the trainings behind the models)."""
    kinds = df.groupby("job") if "job" in df else [("job", df)]
    mixed = [f"{kind} jobs: {', '.join(sorted(g['code'].dropna().astype(str).unique()))}"
             for kind, g in kinds if "code" in g and g["code"].dropna().nunique() > 1]
    if "model_code" in df:
        # an imported checkpoint's model comes from the import job, whose stamp is another kind's:
        # the trained models are compared with each other, the imported ones with each other
        imported = df["external"].notna() if "external" in df else pd.Series(False, index=df.index)
        for label, rows in (("trainings", df[~imported]), ("imports", df[imported])):
            if rows["model_code"].dropna().nunique() > 1:
                mixed.append(f"{label}: {', '.join(sorted(rows['model_code'].dropna().astype(str).unique()))}")
    if not mixed:
        return ""
    what = "; ".join(mixed)
    return (f"<p class='warn'>⚠ This table mixes results computed by different versions of the code ({what}). "
            "Rerun the DAG: Snakemake reruns the jobs whose code changed.</p>")


def _stamps_note(df: pd.DataFrame) -> str:
    """Which code computed the table: each job kind's code stamps, the trainings', the commits."""
    parts = []
    if "job" in df and "code" in df:
        for kind, g in df.groupby("job"):
            parts.append(f"{kind} jobs {', '.join(sorted(g['code'].dropna().astype(str).unique()))}")
    if "model_code" in df and df["model_code"].notna().any():
        parts.append(f"trainings {', '.join(sorted(df['model_code'].dropna().astype(str).unique()))}")
    if "git_commit" in df and df["git_commit"].notna().any():
        parts.append(f"commit {', '.join(sorted(c[:12] + ('+dirty' if c.endswith('+dirty') else '') for c in df['git_commit'].dropna().astype(str).unique()))}")
    return f"<p class='note'>Code stamps: {html.escape('; '.join(parts))}.</p>" if parts else ""


def _table_html(table, df: pd.DataFrame, flagged: dict[str, list[str]]) -> str:
    if df.empty:
        return "<p class='note'>No rows (no model needs this output in this config).</p>"
    if "method" in df and table.key != "claims":  # the claims' rows name compared models, not methods
        df = df.copy()
        df["method"] = df["method"].map(
            lambda m: f"{method_label(m)} ⚑ masking: {', '.join(c.replace('_', ' ') for c in flagged[m])}"
            if m in flagged else method_label(m))
        if "best_method" in df:  # the across-seeds tables name the best beside each method
            df["best_method"] = df["best_method"].map(lambda m: m if pd.isna(m) else method_label(m))
    if table.key == "masking":
        body = _masking_html(df)
    elif table.key == "claims":
        body = _claims_html(df)
    elif table.plain:
        body = _plain_html(df)
    else:
        body = _layout_html(df, table.rows, table.columns, table.rate, colour=table.rate,
                            shared=getattr(table, "shared", None))
    shown = df[df["paper"].notna()] if "paper" in df else df.iloc[:0]
    ref = sorted(set(shown.get("paper_dataset", pd.Series(dtype=str)).dropna())
                 - set(shown.get("dataset", pd.Series(dtype=str))))
    note = (f"<p class='note'>Paper values shown are the paper's {', '.join(ref)} figures (the config's "
            "paper_reference, or the only dataset the paper reports): a reference, not the same dataset, so they "
            "are not coloured.</p>") if ref else ""
    return _code_warning(df) + body + note + _stamps_note(df)


def _flags_by_method(frames: dict[str, pd.DataFrame]) -> dict[str, list[str]]:
    df = frames.get("masking")
    if df is None or df.empty:
        return {}
    raised = df[df["flag"].astype(str).eq("True")]
    return raised.groupby("method")["check"].agg(list).to_dict() if len(raised) else {}


def _run_line(config: dict, frames: dict[str, pd.DataFrame]) -> str:
    """What the numbers below rest on: the run, its datasets and seeds, the methods, the test inputs per rate."""
    # the claims' rows name compared models, not methods ("ours lam=1": Figure 2's ablation)
    methods = sorted({m for key, f in frames.items() if key != "claims" and "method" in f
                      for m in f["method"].dropna().astype(str)})
    inputs = [int(n) for f in frames.values() if "inputs" in f for n in f["inputs"].dropna()]
    size = ("" if not inputs else f"; each rate over {min(inputs)} test inputs" if min(inputs) == max(inputs)
            else f"; each rate over {min(inputs)} to {max(inputs)} test inputs")
    return (f"<p>Run <b>{html.escape(str(config.get('run')))}</b>: "
            f"{html.escape(', '.join(map(str, config.get('datasets', []))))}, seeds "
            f"{html.escape(', '.join(map(str, config.get('seeds', []))))}, {len(methods)} methods{size}.</p>")


#: the tables and metrics of the first screen's summary: the paper's headline numbers
SUMMARY = {"table1": ("Table 1", ["certified_robust_accuracy", "certified_robustness_rate", "standard_accuracy"]),
           "table3": ("Table 3, AutoAttack", ["defence_success_rate"])}


def _summary_html(frames: dict[str, pd.DataFrame]) -> str:
    """The first screen's answer to "which method is best on what, by how much, with what
    uncertainty": per headline column, the best method with its value and interval, the methods
    not significantly below it (McNemar's exact test on the same inputs), and the margin to the
    best of the rest with that comparison's p-value."""
    rows = []
    from bench.tables import get_table

    for key, (label, metrics) in SUMMARY.items():
        df = frames.get(key)
        if df is None or df.empty or "vs_best" not in df:
            continue
        df = _merge_shared(df, get_table(key).shared)  # standard accuracy once, not once per procedure
        # a column of the paper's layout, per seed: vs_best compares methods within one seed
        # and only under one inference rule (argmax or vote) and attack target (protocol)
        group_keys = [k for k in ("dataset", "seed", "vicinity", "procedure", "protocol", "inference", "metric")
                      if k in df]
        ordered = df[df["metric"].isin(metrics)].assign(_order=lambda d: d["metric"].map(metrics.index))
        for group, g in ordered.sort_values("_order", kind="stable").groupby(group_keys, sort=False, dropna=False):
            g = g.dropna(subset=["value"])
            if g.empty:
                continue
            what = dict(zip(group_keys, group if isinstance(group, tuple) else (group,)))
            best = g[g["vs_best"].eq("best")].sort_values("value", ascending=False)
            if best.empty:
                continue
            top = best.iloc[0]
            ties = sorted((method_label(m) for m in g.loc[g["vs_best"].isin(["best", "tie"]), "method"]), key=str.lower)
            rest = g[g["vs_best"].eq("worse")].sort_values("value", ascending=False)
            margin = (f"{top['value'] - rest.iloc[0]['value']:+.1f} over {html.escape(method_label(rest.iloc[0]['method']))} "
                      f"(p = {rest.iloc[0]['vs_best_p']:.2g})" if len(rest) else "none significantly below")
            shown = [k for k in group_keys if k not in ("dataset", "seed")]
            if "seed" in df and df["seed"].nunique() > 1:
                shown.insert(0, "seed")
            column = " / ".join(html.escape(f"seed {what[k]}" if k == "seed" else _key_label(k, what[k]))
                                for k in shown if k == "seed" or _key_label(k, what[k]))
            rows.append(f"<tr><td style='text-align:left'>{label}: {column}</td><td>{html.escape(str(what.get('dataset', '')))}</td>"
                        f"<td><b>{html.escape(method_label(top['method']))}</b></td>"
                        f"<td>{top['value']:.1f} <small>[{top['ci_low']:.1f}, {top['ci_high']:.1f}]</small></td>"
                        f"<td style='text-align:left'>{len(ties)} of {g['method'].nunique()}: "
                        f"{html.escape(', '.join(ties))}</td><td>{margin}</td></tr>")
    if not rows:
        return ""
    return ("<h2>Summary: the best method per headline column</h2><table><thead><tr><th>column</th><th>dataset</th>"
            "<th>best</th><th>value [95 % CI]</th><th>not significantly below the best</th>"
            "<th>margin to the best method significantly below (points, McNemar p)</th></tr></thead><tbody>" + "".join(rows)
            + "</tbody></table><p class='note'>When most methods are not significantly below the best, this run "
            "cannot tell them apart: certify and attack more test inputs for narrower intervals.</p>")


def _provenance(config: dict) -> str:
    hardware = {"machine": platform.machine(), "processor": platform.processor() or platform.machine(),
                "cpus": os.cpu_count()}
    rows = [("generated", datetime.now(timezone.utc).isoformat(timespec="seconds")), ("run", config.get("run")),
            ("git commit (report)", git_commit()), *package_versions().items(), *hardware.items()]
    table = "<table>" + "".join(f"<tr><th>{html.escape(k)}</th><td>{html.escape(str(v))}</td></tr>" for k, v in rows) + "</table>"
    return (table + "<p class='note'>Each job's own provenance (settings, code stamps, commit, packages, device, "
            "seed) is in its output under results/&lt;run&gt;/; each table row carries the code stamps of the jobs "
            "behind it.</p><details><summary>Config</summary>"
            f"<pre>{html.escape(json.dumps(config, indent=2, default=str))}</pre></details>")


_SORT_JS = """<script>
document.querySelectorAll('table.sortable').forEach(t => t.querySelectorAll('th').forEach((th, i) => {
  th.style.cursor = 'pointer'; th.title = 'sort';
  th.addEventListener('click', () => {
    const body = t.tBodies[0]; const asc = th.dataset.asc !== '1'; th.dataset.asc = asc ? '1' : '0';
    const key = r => { const c = r.cells[i]; const v = parseFloat((c ? c.textContent : '').replace('≈', ''));
                       return isNaN(v) ? (c ? c.textContent : '') : v; };
    [...body.rows].sort((a, b) => { const x = key(a), y = key(b);
      return (x > y ? 1 : x < y ? -1 : 0) * (asc ? 1 : -1); }).forEach(r => body.appendChild(r));
  });
}));
</script>"""


def _recipes_html(path: str | None, config: dict) -> str:
    """The training recipes of the run's methods on its datasets' shapes, collapsed: every value
    with its source (:mod:`bench.report.recipes`)."""
    if not path:
        return ""
    from bench.data import dataset_info
    from bench.training import shape_group

    recipes = pd.read_csv(path, dtype=str, keep_default_na=False)
    shapes = {shape_group(dataset_info(d)) for d in config.get("datasets", [])}
    recipes = recipes[recipes["shape"].isin(shapes)]
    overrides = config.get("hparams") or {}
    note = (f" This run overrides: {html.escape(json.dumps(overrides, sort_keys=True))}." if overrides else "")
    return ("<h2>Training recipes</h2><p class='note'>Each method's defaults as the training code uses them, with "
            "where each comes from (paper section, the authors' code, or the baseline's original code)." + note
            + " Epochs and batch size are the config's unless it says <code>recipe</code>.</p>"
            f"<details><summary>{len(recipes)} settings of {recipes['method'].nunique()} methods</summary>"
            + recipes.to_html(index=False, classes="sortable", escape=True) + "</details>")


def html_report(tables: dict[str, str], figures: dict[str, str], times: str, config: dict, out: str,
                recipes: str | None = None) -> None:
    """Write one self-contained HTML page (images embedded as data URIs).

    ``tables`` maps table keys (:data:`bench.tables.TABLES`) to their CSV; a table with
    ``beside`` follows the table it belongs to; a model with a raised gradient-masking flag gets
    a red mark beside its rows in every table."""
    from bench.tables import get_table

    frames = {key: pd.read_csv(path) for key, path in tables.items()}
    flagged = _flags_by_method(frames)
    objects = sorted((get_table(k) for k in tables), key=lambda t: t.order)
    parts = ["<!doctype html><html><head><meta charset='utf-8'><title>cpr-bench report</title><style>",
             "body{font-family:sans-serif;max-width:1200px;margin:auto;padding:1em}",
             "table{border-collapse:collapse;margin:1em 0;font-size:13px}",
             "td,th{border:1px solid #ccc;padding:3px 7px;text-align:right}th{background:#f3f3f3}",
             "small{color:#555}.note{font-size:12px;color:#555}pre{background:#f6f6f6;padding:1em;font-size:11px}",
             # a table wider than the page scrolls by itself; an interval or paper value is not split
             "table{display:block;width:fit-content;max-width:100%;overflow-x:auto;border:0}",
             "td small{white-space:nowrap}",
             "summary{cursor:pointer}",
             ".warn{background:#fff3cd;padding:.5em}",
             "</style></head><body><h1>cpr-bench: reproduction of “Towards Certified Probabilistic Robustness with "
             "High Accuracy”</h1>",
             f"<p>Each cell: our value (percent of test inputs) and its exact {LEVEL:.0%} Clopper–Pearson interval; "
             "<b>bold</b>: the best method of the column; ≈: not significantly below the best on the same test inputs "
             f"(McNemar's exact test, p ≥ {1 - LEVEL:.2g}; hover a cell for the counts and p-value). The paper's "
             "value is printed under ours; green: within 2 points of it, red: below it, blue: above it (only where the "
             "dataset is the paper's own). <b>paper</b> columns use the paper's re-test-after-every-sample procedure, "
             "which is not a valid sequential test; <b>mixture</b> and <b>sprt</b> columns use valid ones.</p>",
             _run_line(config, frames), _summary_html(frames)]
    for table in objects:
        parts += [f"<h2>{html.escape(table.title)}</h2>", _table_html(table, frames[table.key], flagged)]
    for title, path in figures.items():
        parts += [f"<h2>{html.escape(title)}</h2>", _img(path)]
    parts.append(_recipes_html(recipes, config))
    jt = pd.read_csv(times)
    parts += ["<h2>Provenance</h2>", _provenance(config),
              f"<h3>Wall time of each job (total {jt['seconds'].sum():.0f} s)</h3>",
              f"<details><summary>{len(jt)} jobs</summary>",
              jt.to_html(index=False, float_format=lambda v: f"{v:.1f}", classes="sortable"), "</details>", _SORT_JS,
              "</body></html>"]
    atomic_path(out, lambda tmp: tmp.write_text("\n".join(parts)))
