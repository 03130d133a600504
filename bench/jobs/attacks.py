"""The job of ``attacks.group: model``: the attacks every model needs (Table 9's, AutoAttack, the
gradient-masking checks; :func:`bench.workflow.plan.grouped_attacks`) on one model, one after another in
one process: one Python and torch start instead of one per attack.

Each attack runs exactly as its own job would (:func:`bench.jobs.attack.run`: its own settings,
seed, resumable progress and output), so grouped and ungrouped runs write the same rows. Every
attack's progress file stays until the last output is written: Snakemake deletes all outputs of
a job that failed or was killed, and its rerun reads the finished attacks back from them.
"""
from __future__ import annotations

from pathlib import Path

from bench.jobs.attack import attack_model
from bench.jobs.common import Context

__all__ = ["run_group"]


def run_group(smk) -> None:
    """Every attack of ``params.settings`` (attack name -> that attack's job settings) on one
    model, each written to its ``attacks/<name>.json`` output."""
    outputs = {Path(p).stem: p for p in smk.output}  # attacks/<name>.json
    context = Context.of(smk)
    finish = [attack_model(smk.input.model, outputs[name], settings, smk.params.code, context, finish=False)
              for name, settings in smk.params.settings.items()]
    for remove_progress in finish:
        remove_progress()
