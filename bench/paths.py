"""The layout of a run's files: the one module that builds or parses a path of ``results/``.

Every model a config trains or imports has one folder, and every job writes into its model's
folder; logs and Snakemake benchmark files mirror the model's place under ``logs/`` and
``benchmarks/``::

    results/<run>/<dataset>/<method>/<arch>/seed<k>/                    a model (ModelRun)
    results/<run>/ablation/<dataset>/<method>/<arch>/<hparam>-<value>/seed<k>/   an ablation's model
        model.json  model.safetensors  log.csv                          train (or import)
        certify/<table>.json  certify/<table>_inputs.csv                certify (bench.tables)
        certify/validation.json                                         validation (arch: sweep)
        attacks/<attack>.json                                           attack
        audit.json  native.json                                         audit, native
    results/<run>/<dataset>/<method>/seed<k>/arch.json                  select_arch (arch: sweep)
    results/<run>/logs/<model>/<job>.log  results/<run>/logs/<name>.log logs
    results/<run>/benchmarks/<model>/<job>.tsv                          Snakemake benchmark: files
    reports/<run>/<table>.csv ...                                       aggregates (reports_dir)

:class:`ModelRun` is one model's folder and :class:`Output` one job output in it, each with
``path()`` and ``parse()``; the Snakefile's wildcard patterns are the same objects with
``{wildcard}`` fields (:meth:`ModelRun.pattern`). Rules, the plan, tables, the estimate, the
report and the figures all go through here, so that a new axis of the layout (a seed or an
inference rule, say) is one change in this module (``tests/test_paths.py`` greps the package for
path building elsewhere).
"""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path, PurePosixPath

__all__ = ["ModelRun", "OUTPUT_KINDS", "Output", "benchmark_job", "file_kind", "model_file", "output_kind", "reports_dir", "results_dir", "run_log", "selection_file",
           "selection_log"]

RESULTS = "results"
ABLATION = "ablation"
#: the file, inside a model's folder, of each kind of job output; ``{name}`` is the table or attack
OUTPUT_KINDS: dict[str, str] = {
    "model": "model.json",
    "weights": "model.safetensors",
    "log": "log.csv",
    "certify": "certify/{name}.json",
    "certify_inputs": "certify/{name}_inputs.csv",
    "validation": "certify/validation.json",
    "attack": "attacks/{name}.json",
    "audit": "audit.json",
    "native": "native.json",
}


@dataclass(frozen=True)
class ModelRun:
    """One model's folder: ``results/<run>/[ablation/]<dataset>/<method>/<arch>/[<hparam>-<value>/]seed<seed>``.

    Fields are strings or ints as the config gives them; :meth:`pattern` fills them with
    Snakemake wildcards (``"{dataset}"``) instead."""

    run: str
    dataset: str
    method: str
    arch: str
    seed: int | str
    hparam: str | None = None
    value: str | None = None

    @classmethod
    def of(cls, config_or_run: dict | str, run: dict) -> "ModelRun":
        """The model of one run dict of :mod:`bench.runs` (``dataset``, ``method``, ``arch``,
        ``seed`` and, for an ablation, ``hparam`` and ``value``) in a config (or run name)."""
        name = config_or_run["run"] if isinstance(config_or_run, dict) else config_or_run
        return cls(name, run["dataset"], run["method"], run["arch"], run["seed"], run.get("hparam"), run.get("value"))

    @classmethod
    def pattern(cls, run: str, ablation: bool = False) -> "ModelRun":
        """The Snakemake wildcard pattern of a model's folder (``{dataset}``, ``{method}``, ...)."""
        extra = {"hparam": "{hparam}", "value": "{value}"} if ablation else {}
        return cls(run, "{dataset}", "{method}", "{arch}", "{seed}", **extra)

    @property
    def ablation(self) -> bool:
        return self.hparam is not None

    def _model(self) -> str:
        """The model's part of the path, below ``results/<run>/`` (and below logs/, benchmarks/)."""
        parts = [ABLATION] if self.ablation else []
        parts += [self.dataset, self.method, self.arch]
        if self.ablation:
            parts.append(f"{self.hparam}-{self.value}")
        return "/".join([*parts, f"seed{self.seed}"])

    def path(self, *below: str) -> str:
        """The model's folder, or a file below it."""
        return "/".join([RESULTS, self.run, self._model(), *below])

    def output(self, kind: str, name: str = "") -> str:
        """The path of one job output of this model (:data:`OUTPUT_KINDS`)."""
        return Output(self, kind, name).path()

    def log(self, job: str) -> str:
        """The log file of one job of this model (``job``: ``train``, ``certify_table1`` ...)."""
        return f"{RESULTS}/{self.run}/logs/{self._model()}/{job}.log"

    def benchmark(self, job: str) -> str:
        """The Snakemake ``benchmark:`` file of one job of this model."""
        return f"{RESULTS}/{self.run}/benchmarks/{self._model()}/{job}.tsv"

    def as_dict(self) -> dict:
        """The run dict of :mod:`bench.runs` (``seed`` an int where it is one)."""
        out = {"dataset": self.dataset, "method": self.method, "arch": self.arch,
               "seed": int(self.seed) if str(self.seed).isdigit() else self.seed}
        if self.ablation:
            out.update(hparam=self.hparam, value=self.value)
        return out

    @classmethod
    def parse(cls, path: str) -> tuple["ModelRun", str]:
        """The model whose folder (or logs/ or benchmarks/ mirror) holds ``path``, and the rest of
        the path below it. Raises ``ValueError`` for a path outside the layout."""
        parts = PurePosixPath(path).parts
        try:
            start = parts.index(RESULTS)
        except ValueError:
            raise ValueError(f"not a path of the results layout (no '{RESULTS}/'): {path}") from None
        parts = parts[start + 1 :]
        if len(parts) < 2:
            raise ValueError(f"not a model's path: {path}")
        run, rest = parts[0], list(parts[1:])
        if rest[0] in ("logs", "benchmarks"):
            rest = rest[1:]
        seed = next((i for i, p in enumerate(rest) if p.startswith("seed") and p[4:].isdigit()), None)
        ablation = bool(rest) and rest[0] == ABLATION
        model = rest[1:seed] if ablation else rest[:seed]
        if seed is None or len(model) != (4 if ablation else 3):
            raise ValueError(f"not a model's path (results/<run>/[ablation/]<dataset>/<method>/<arch>/"
                             f"[<hparam>-<value>/]seed<k>/...): {path}")
        hparam = value = None
        if ablation:
            hparam, _, value = model[3].partition("-")
        found = cls(run, model[0], model[1], model[2], int(rest[seed][4:]), hparam, value)
        return found, "/".join(rest[seed + 1 :])


@dataclass(frozen=True)
class Output:
    """One job output in a model's folder: its ``kind`` (:data:`OUTPUT_KINDS`) and, for a
    table's certification or an attack, its ``name``."""

    model: ModelRun
    kind: str
    name: str = ""

    def path(self) -> str:
        try:
            file = OUTPUT_KINDS[self.kind]
        except KeyError:
            raise ValueError(f"no such output kind: '{self.kind}'; known: {', '.join(OUTPUT_KINDS)}") from None
        return self.model.path(file.format(name=self.name))

    @classmethod
    def parse(cls, path: str) -> "Output":
        """The output at ``path`` (``ValueError`` if it is none of :data:`OUTPUT_KINDS`)."""
        model, below = ModelRun.parse(path)
        kind, name = _kind_and_name(below)
        if kind is None:
            raise ValueError(f"not a job output of the results layout: {path}")
        return cls(model, kind, name)


def _kind_and_name(below: str) -> tuple[str | None, str]:
    """The output kind and name of a file path inside a model's folder."""
    for kind, file in OUTPUT_KINDS.items():
        head, _, tail = file.partition("{name}")
        if "{name}" not in file:
            if below == file:
                return kind, ""
        elif below.startswith(head) and below.endswith(tail) and "/" not in below[len(head): len(below) - len(tail)]:
            name = below[len(head): len(below) - len(tail)]
            if name and not (kind == "certify" and name == "validation") and not (
                    kind == "certify" and name.endswith("_inputs")):
                return kind, name
    return None, ""


def file_kind(path: str) -> str | None:
    """The output kind (:data:`OUTPUT_KINDS`) of a result file from its last components alone,
    so that it also names a copy outside ``results/``; None for none of them."""
    p = PurePosixPath(path)
    kind, _ = _kind_and_name("/".join(p.parts[-2:]))
    return kind or _kind_and_name(p.name)[0]


def output_kind(path: str) -> str:
    """The kind of job that wrote a result file (:func:`file_kind`): ``train`` for
    ``model.json``, ``certify`` (its summary and its per-input file), ``attack``, ``audit``,
    ``native``, ``validation``; otherwise the file's stem."""
    kind = file_kind(path)
    return {"model": "train", "certify_inputs": "certify"}.get(kind, kind) if kind else PurePosixPath(path).stem


def model_file(folder: str | Path, kind: str) -> Path:
    """A file of a model's folder, wherever the folder is (a job's output folder, an imported
    checkpoint's): ``model`` (model.json), ``weights`` (model.safetensors) or ``log`` (log.csv)."""
    if kind not in ("model", "weights", "log"):
        raise ValueError(f"not a file of a model's folder: '{kind}'; known: model, weights, log")
    return Path(folder) / OUTPUT_KINDS[kind]


def selection_file(run: str, dataset: str, method: str, seed: int | str) -> str:
    """The ``arch: sweep`` checkpoint's record of one method's chosen architecture."""
    return f"{RESULTS}/{run}/{dataset}/{method}/seed{seed}/arch.json"


def selection_log(run: str, dataset: str, method: str, seed: int | str) -> str:
    return f"{RESULTS}/{run}/logs/{dataset}/{method}/seed{seed}/select_arch.log"


def run_log(run: str, job: str) -> str:
    """The log of a job of the whole run (an aggregation, a figure, the report)."""
    return f"{RESULTS}/{run}/logs/{job}.log"


def results_dir(run: str) -> str:
    """A config's results folder: every model's folder, log and benchmark file is below it."""
    return f"{RESULTS}/{run}"


def reports_dir(run: str) -> str:
    """Where a config's aggregates live; ``reports/<file>`` at the top is the current config's copy."""
    return f"reports/{run}"


def benchmark_job(path: str) -> str:
    """The job's name in ``reports/job_times.csv``: a benchmark file's path below
    ``benchmarks/``, without ``.tsv`` (``fashion_mnist/erm/convnet/seed0/train``)."""
    return str(PurePosixPath(path).with_suffix("")).split("/benchmarks/", 1)[-1]
