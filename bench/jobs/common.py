"""What every job does: logging, threads, plugins, its settings, its identity and provenance."""
from __future__ import annotations

import json
import logging
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch

from bench.certification.vicinity import parse_vicinity
from bench.compute.device import resolve_device
from bench.compute.memory import free_memory_budget, set_budget
from bench.compute.precision import AtPrecision, Precision
from bench.data import dataset_info
from bench.io import write_json
from bench.paths import model_file
from bench.training import get_method
from bench.workflow.extensions import load_extensions
from bench.workflow.provenance import record

__all__ = ["Context", "Job", "activation_budget", "evaluated_model", "identity", "method_instance"]


def activation_budget(megabytes: int | str | None, device: torch.device) -> int | None:
    """Bytes for one forward's activations (:func:`bench.compute.memory.set_budget`) from the config's
    ``resources.activation_memory_mb``: MiB, ``auto`` (80 % of the GPU's free memory; no
    chunking on the CPU), or None/0 (no chunking)."""
    if megabytes in (None, 0, "0"):
        return None
    if megabytes == "auto":
        return free_memory_budget(device)
    return int(megabytes) * 2**20


def identity(s: dict) -> dict:
    """The keys every result row carries; ablation runs add the varied hyperparameter."""
    out = {k: s[k] for k in ("method", "dataset", "arch", "seed")}
    if s.get("external"):  # an external checkpoint (bench.training.external): marked in every row
        out["external"] = f"{s['external']['weights']}" + (f" (claims {s['external']['claims']})"
                                                          if s["external"].get("claims") else "")
    if "hparam" in s:
        out.update(hparam=s["hparam"], value=float(s["value"]))
    return out


@dataclass(frozen=True)
class Context:
    """What a job runs under besides its settings and code: its log file, its threads, the
    activation-memory budget its forwards chunk to (a resource: chunked results are identical)
    and the config's plugins, external models and vote methods (loaded, not settings: a table plugin changes
    no result, and a plugin method's code is stamped in the job's ``code``)."""

    log: str | None = None
    threads: int = 1
    activation_memory_mb: int | str | None = None
    plugins: tuple[str, ...] = ()
    models: tuple[dict, ...] = ()
    votes: tuple[str, ...] = ()

    @classmethod
    def of(cls, smk) -> "Context":
        """The context of a Snakemake job (its ``log``, ``threads``, ``resources``, ``config``)."""
        return cls(log=smk.log[0] if smk.log else None, threads=int(smk.threads),
                   activation_memory_mb=getattr(smk.resources, "activation_memory_mb", None),
                   plugins=tuple(smk.config.get("plugins", [])), models=tuple(smk.config.get("models") or []),
                   votes=tuple(smk.config.get("vote") or []))


class Job:
    """One job: its settings (the rule's ``params.settings``), code stamps (``params.code``),
    device, and the writer of its JSON output with the provenance block."""

    def __init__(self, settings: dict[str, Any], code: dict[str, str], context: Context):
        logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s: %(message)s", datefmt="%H:%M:%S",
                            filename=context.log, force=True)
        torch.set_num_threads(max(1, int(context.threads)))
        self.settings: dict[str, Any] = dict(settings)
        self.code: dict[str, str] = dict(code)
        self.context = context
        load_extensions({"plugins": list(context.plugins), "models": list(context.models), "vote": list(context.votes)})
        self.device = resolve_device(self.settings.get("device"), require_gpu=int(self.settings.get("gpus", 0)) > 0)
        self.seed = int(self.settings["seed"])
        self.precision = Precision.of(self.settings.get("precision"), self.settings.get("channels_last"))
        budget = self.settings.get("activation_memory_mb", context.activation_memory_mb)
        set_budget(activation_budget(budget, self.device))
        self.identity = identity(self.settings)

    def provenance(self, model_dir: str | Path | None = None) -> dict:
        out = record(self.settings, self.code, self.device, self.seed)
        if model_dir is not None:  # the training behind an evaluated model (its own declared input)
            meta = json.loads(model_file(model_dir, "model").read_text())
            out["model_code"] = meta.get("provenance", {}).get("code", {}).get("engine")
            out["model_git_commit"] = meta.get("provenance", {}).get("git_commit")
        return out

    def write(self, rows: list[dict], path: str | Path, model_dir: str | Path | None = None) -> None:
        """``{"rows": rows, "provenance": ...}``, atomically."""
        label = self.precision.dtype + ("+channels_last" if self.precision.channels_last else "")
        rows = [{"precision": label, **r} for r in rows]
        write_json({"rows": rows, "provenance": self.provenance(model_dir)}, path)


def evaluated_model(run_dir: Path, job: "Job") -> torch.nn.Module:
    """The trained model as every evaluation of it runs: at the job's precision (:class:`AtPrecision`)."""
    from bench.models.checkpoint import load_model

    return AtPrecision(load_model(run_dir, job.device), job.precision).eval()


def method_instance(run_dir: Path, s: dict, job: "Job") -> tuple[torch.nn.Module, Any]:
    """The trained model (at the job's precision) and its method object (the method's own
    prediction, vote inputs)."""
    model = evaluated_model(run_dir, job)
    device = job.device
    meta = json.loads(model_file(run_dir, "model").read_text())
    method = get_method(s["method"])(meta["hparams"], dataset_info(s["dataset"]), parse_vicinity(meta["vicinity"]),
                                     torch.Generator(device=device).manual_seed(int(s["seed"])))
    return model, method
