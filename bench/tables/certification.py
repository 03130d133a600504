"""The paper's certification tables (1, 2, 10, 11, 12): settings of one certify job per model.

Table 1: κ = α = 0.01 in the main L∞ vicinity (Section 5.1); Table 10: the smaller vicinity;
Table 11: κ from 0 (sound bounds) to 0.1; Table 12: confidence 1−α; Table 2: the functional
vicinities (translation, rotation, affine, scale). Each setting runs once per procedure of the
config (``paper``: Algorithm 2 as printed; ``mixture``/``sprt``: valid sequential tests).
"""
from __future__ import annotations

from bench.tables.base import CertificationTable, register_table

TRANSFORM_COLUMNS = {"translate": "translation", "rotate": "rotation", "affine": "affine", "scale": "scale"}


@register_table
class Table1(CertificationTable):
    key, number, order = "table1", 1, 1
    title = "Table 1: standard accuracy, certified robustness rate, certified robust accuracy (L∞)"
    metrics = ["standard_accuracy", "certified_robustness_rate", "certified_robust_accuracy"]
    columns = ["metric", "procedure"]
    # the prediction on the clean input: no sequential test is involved
    shared = {"standard_accuracy": ["procedure"]}

    def settings(self, config, vicinities):
        c = config["certify"]
        return [self.setting(vicinities, "main", c["kappa"], c["alpha"], p) for p in c["procedures"]]


@register_table
class Table2(CertificationTable):
    key, number, order = "table2", 2, 2
    title = "Table 2: certified robust accuracy under functional perturbations"
    setting_keys = ["vicinity"]
    columns = ["transform", "procedure"]

    def settings(self, config, vicinities):
        c = config["certify"]
        return [self.setting(vicinities, t, c["kappa"], c["alpha"], p) for t in c["transforms"] for p in c["procedures"]]

    def paper_values(self, long, reference):
        long = long.rename(columns={"vicinity": "transform"})
        long["paper_dataset"] = long["dataset"].map(lambda d: reference.get(d, d))
        long["paper_metric"] = long["transform"].map(TRANSFORM_COLUMNS)
        from bench.paper import paper_table

        paper = paper_table(2).melt(id_vars=["method", "dataset"], var_name="paper_metric", value_name="paper")
        return long.merge(paper.rename(columns={"dataset": "paper_dataset"}),
                          on=["method", "paper_dataset", "paper_metric"], how="left").drop(columns="paper_metric")


@register_table
class Table10(CertificationTable):
    key, number, order = "table10", 10, 10
    title = "Table 10: certified robust accuracy within the smaller vicinity"
    columns = ["procedure"]

    def settings(self, config, vicinities):
        c = config["certify"]
        return [self.setting(vicinities, "small", c["kappa"], c["alpha"], p) for p in c["procedures"]]


@register_table
class Table11(CertificationTable):
    key, number, order = "table11", 11, 11
    title = "Table 11: certified robust accuracy against κ (κ = 0: sound IBP bounds)"
    setting_keys = ["kappa"]
    columns = ["kappa", "procedure"]

    def settings(self, config, vicinities):
        c = config["certify"]
        return [self.setting(vicinities, "main", k, c["alpha"], p) for k in c["kappas"] if k > 0
                for p in c["procedures"]]

    def deterministic(self, config):
        return 0 in config["certify"]["kappas"]


@register_table
class Table12(CertificationTable):
    key, number, order = "table12", 12, 12
    title = "Table 12: certified robust accuracy against the confidence 1−α"
    setting_keys = ["confidence"]
    columns = ["confidence", "procedure"]

    def settings(self, config, vicinities):
        c = config["certify"]
        return [self.setting(vicinities, "main", c["kappa"], round(1 - conf, 10), p)
                for conf in c["confidences"] for p in c["procedures"]]


__all__ = ["TRANSFORM_COLUMNS", "Table1", "Table2", "Table10", "Table11", "Table12"]
