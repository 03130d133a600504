"""The native-certificate job: the method's own certificate (:mod:`bench.evaluation.native`), Cohen's
CERTIFY for RS, sound auto_LiRPA bounds (IBP, CROWN-IBP) for IBP."""
from __future__ import annotations

import time
from pathlib import Path

from bench.certification.vicinity import parse_vicinity
from bench.data import load_split
from bench.jobs.common import Context, Job, method_instance
from bench.models.checkpoint import load_model

__all__ = ["native_certificates", "run"]


def run(smk) -> None:
    """The ``native`` rule: :func:`native_certificates` on its declared files."""
    native_certificates(smk.input.model, smk.output.result, smk.params.settings, smk.params.code, Context.of(smk))


def native_certificates(model_file: str, output: str, settings: dict, code: dict, context: Context) -> None:
    """The native certificates of the model at ``model_file``, written to ``output``."""
    from bench.evaluation.native import bound_certify, certified_accuracy, smoothing_certify

    job = Job(settings, code, context)
    s = job.settings
    n_cfg = s["native"]
    model, method = method_instance(Path(model_file).parent, s, job)
    test = load_split(s["dataset"], "test", s["data_root"], subset_per_class=n_cfg.get("test_per_class")).to(job.device)
    rows = []
    start = time.perf_counter()
    if method.native_certificate == "smoothing":
        sm = n_cfg["smoothing"]
        sigma = float(method.hparams["sigma"])
        frame = smoothing_certify(model, test.images, sigma, test.info.num_classes, n0=int(sm["n0"]), n=int(sm["n"]),
                                  alpha=float(sm["alpha"]), seed=job.seed)
        for r, acc in certified_accuracy(frame, test.labels, [float(x) for x in sm["radii"]]).items():
            rows.append({**job.identity, "certificate": "CERTIFY (Cohen et al. 2019)", "norm": "L2", "radius": r,
                         "metric": "certified_accuracy", "value": acc, "inputs": len(test),
                         "settings": {"sigma": sigma, "n0": sm["n0"], "n": sm["n"], "alpha": sm["alpha"]}})
    elif method.native_certificate == "bounds":
        eps = parse_vicinity(s["linf"]).eps
        bare = load_model(Path(model_file).parent, job.device)  # sound bounds: IEEE fp32, no wrapper
        for bound in n_cfg["bounds"]:
            metrics = bound_certify(bare, test.images, test.labels, eps, bound)
            rows.append({**job.identity, "certificate": f"{bound} bounds (auto_LiRPA), κ = 0", "norm": "Linf",
                         "radius": eps, "metric": "certified_robust_accuracy",
                         "value": metrics["certified_robust_accuracy"], "inputs": len(test), "settings": {},
                         "precision": "fp32 (IEEE: sound bounds)"})
    else:
        raise ValueError(f"method '{s['method']}' declares no native certificate")
    for r in rows:
        r["seconds"] = time.perf_counter() - start
    job.write(rows, output, Path(model_file).parent)
