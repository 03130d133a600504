"""Table 4: training and inference time, from the training jobs' ``model.json`` and the
paper-procedure certification of Table 1 (seconds of wall time on the device recorded)."""
from __future__ import annotations

import json
from pathlib import Path

import pandas as pd

from bench.paths import ModelRun, output_kind
from bench.runs import runs
from bench.tables.base import MODEL_KEYS, Table, read_rows, register_table

__all__ = ["Table4"]


@register_table
class Table4(Table):
    key, number, order = "table4", 4, 4
    title = "Table 4: training and inference time (seconds)"
    columns = ["metric", "procedure"]
    compare, rate = False, False

    def inputs(self, config, arch_of=None):
        return [ModelRun.of(config, r).output(*o) for r in runs(config, arch_of, votes=False)
                for o in (("model",), ("certify", "table1"))]

    def build(self, paths, config):
        # a vote method's model is its method's training, already a row; an external one has none
        models = [m for m in (json.loads(Path(p).read_text()) for p in paths if output_kind(p) == "train")
                  if "metrics" in m and not (m.get("method") or {}).get("voted_from")]
        train = [{**{k: m["spec"][k] for k in MODEL_KEYS}, "metric": "train_seconds",
                  "value": m["metrics"]["train_seconds"], "epochs": m["epochs"], "device": m["device"], "job": "train",
                  "code": m.get("provenance", {}).get("code", {}).get("engine"),
                  "git_commit": m.get("provenance", {}).get("git_commit")} for m in models]
        infer = [{**{k: r[k] for k in MODEL_KEYS}, "metric": "inference_seconds", "value": r["seconds"],
                  "inputs": r["inputs"], "procedure": r["procedure"], "job": r["job"], "code": r["code"], "model_code": r.get("model_code"),
                  "git_commit": r["git_commit"]}
                 for r in read_rows([p for p in paths if p.endswith("table1.json")]) if r.get("procedure") == "paper"]
        return self.attach_paper(pd.DataFrame(train + infer), 4, ["method", "dataset"], config.get("paper_reference", {}))
