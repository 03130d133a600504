"""The GPU measurements of the scale work in one run, on a machine with a GPU.

1. :mod:`benchmarks.throughput` on the GPU: images per second and activation memory per image of
   every architecture (rows of ``reports/bench/throughput.csv`` named by the GPU), the inputs of
   ``python -m bench plan --estimate CONFIG --device "<GPU name>"``.
2. ``config/gpu-check.yaml`` (every job kind, full-size architectures, the paper's training
   hyperparameters): its data staged, then its DAG run by Snakemake for at most ``--dag-seconds``
   (stopped with SIGINT, as a user's Ctrl-C, when the time is up: the jobs that finished are
   measured, the rest are counted as not run).
3. ``<out>/gpu_check_jobs.csv``: one row per finished job, its wall seconds (Snakemake
   ``benchmark:``) and, where it wrote one, the GPU peak memory of its process
   (``provenance.gpu_peak_mib``, ``torch.cuda.max_memory_allocated``);
   ``<out>/gpu_check_summary.csv``: steps done of the DAG's total, elapsed seconds, the device;
   ``<out>/gpu_check_estimate.csv``: each finished job beside its estimate on this device
   (``python -m bench plan --estimate CONFIG --measured``: ``estimated_s``, ``measured_s``,
   ``ratio``), the check of :mod:`bench.workflow.estimate`'s latency and start-up terms.
4. With ``--certify-speed``, after the DAG: :mod:`benchmarks.certify_speed` on the GPU (the
   engine against bare forwards and the literal Algorithm 2, ``<out>/certify.csv``, the GPU's
   rows beside the CPU's): the cost of sampling the streams chunk by chunk there.

Run on the GPU machine from the repository root::

    python benchmarks/gpu_check.py --cores 32 --gpus 8 --dag-seconds 600

``--gpus 8`` lets 8 jobs share the GPU (the whole check took 5 min 43 s so on an 80 GB H100; its
largest job peaked at 8.5 GiB); on a small card, ``--gpus 1`` runs one job at a time.

Without a GPU it refuses (``--device cpu`` measures the CPU, for testing this script).
"""
from __future__ import annotations

import argparse
import json
import logging
import os
import re
import signal
import subprocess
import sys
import time
from pathlib import Path

import pandas as pd
import yaml

sys.path.insert(0, str(Path(__file__).resolve().parent))  # benchmarks/throughput.py beside this file
import certify_speed  # noqa: E402
import throughput  # noqa: E402

from bench.io import write_csv  # noqa: E402
from bench.report.html import job_times  # noqa: E402

log = logging.getLogger("benchmarks.gpu_check")
CONFIG = Path("config/gpu-check.yaml")


def _snakemake(config: Path, targets: list[str], cores: int, gpus: int, seconds: float,
               log_path: Path, grace: float = 30.0) -> tuple[float, str]:
    """Runs the DAG for at most ``seconds``, then stops it (SIGINT, and SIGKILL to its process
    group with its lock released if it is still running ``grace`` seconds later); returns the
    elapsed seconds and the last progress line."""
    cmd = [sys.executable, "-m", "snakemake", *targets, "--cores", str(cores), "--resources", f"gpu={gpus}",
           "--keep-going", "--rerun-incomplete", "--configfile", str(config)]
    log.info("%s", " ".join(cmd))
    start = time.perf_counter()
    with open(log_path, "a") as out:
        out.write(f"$ {' '.join(cmd)}\n")
        out.flush()
        # its own process group: the stop reaches Snakemake's jobs too, as a terminal's Ctrl-C does
        proc = subprocess.Popen(cmd, stdout=out, stderr=subprocess.STDOUT, start_new_session=True)
        try:
            proc.wait(timeout=seconds)
        except subprocess.TimeoutExpired:
            log.warning("DAG not finished after %.0f s: stopping it (SIGINT)", seconds)
            os.killpg(proc.pid, signal.SIGINT)
            try:
                proc.wait(timeout=grace)
            except subprocess.TimeoutExpired:
                os.killpg(proc.pid, signal.SIGKILL)  # Snakemake and every job it started
                proc.wait()
                # A killed Snakemake leaves its lock, and the next run on this directory would
                # stop with a LockException (it did on the H200): release it, now that no job of
                # the killed run is left to write.
                log.warning("Snakemake killed with its jobs: releasing its lock (--unlock)")
                subprocess.run([*cmd, "--unlock"], stdout=out, stderr=subprocess.STDOUT, check=False)
    elapsed = time.perf_counter() - start
    steps = re.findall(r"\d+ of \d+ steps \([^)]*\) done", log_path.read_text().rpartition(f"$ {' '.join(cmd)}")[2])
    return elapsed, (steps[-1] if steps else "0 steps done")


def _peaks(results: Path) -> pd.DataFrame:
    """The GPU peak memory every job output's provenance recorded."""
    rows = []
    for p in sorted(results.rglob("*.json")):
        try:
            prov = json.loads(p.read_text()).get("provenance", {})
        except (ValueError, AttributeError):
            continue
        if isinstance(prov, dict) and prov.get("gpu_peak_mib") is not None:
            rows.append({"output": str(p.relative_to(results)), "gpu_peak_mib": prov["gpu_peak_mib"],
                         "device": prov.get("device")})
    return pd.DataFrame(rows, columns=["output", "gpu_peak_mib", "device"])


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--device", default="cuda")
    parser.add_argument("--config", type=Path, default=CONFIG)
    parser.add_argument("--target", default="reports/gpu-check/report.html")
    parser.add_argument("--first", nargs="*", default=[], help="outputs to build before --target (same time limit)")
    parser.add_argument("--dag-seconds", type=float, default=600)
    parser.add_argument("--cores", type=int, default=16)
    parser.add_argument("--gpus", type=int, default=1, help="Snakemake's gpu resource: GPU jobs at a time")
    parser.add_argument("--skip-throughput", action="store_true")
    parser.add_argument("--certify-speed", action="store_true", help="then benchmarks/certify_speed.py on the device")
    parser.add_argument("--out", type=Path, default=Path("reports/bench"))
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s: %(message)s", datefmt="%H:%M:%S")
    import torch

    if args.device.startswith("cuda") and not torch.cuda.is_available():
        raise SystemExit("benchmarks/gpu_check.py: no usable GPU (give --device cpu to try the script on the CPU)")
    device = torch.device(args.device)
    args.out.mkdir(parents=True, exist_ok=True)
    if not args.skip_throughput:
        throughput.main(["--device", args.device, "--threads", "8", "--eval-batch", "1024", "--train-batch", "128",
                         "--batches", "5", "--repeats", "5", "--out", str(args.out / "throughput.csv")])
    subprocess.run([sys.executable, "-m", "bench", "data", "fetch", "--config", str(args.config)], check=True)
    run = yaml.safe_load(args.config.read_text())["run"]
    log_path = args.out / "gpu_check_snakemake.log"
    log_path.unlink(missing_ok=True)
    elapsed, progress = 0.0, ""
    for targets in ([args.first] if args.first else []) + [[args.target]]:
        if elapsed >= args.dag_seconds:
            break
        seconds, progress = _snakemake(args.config, targets, args.cores, args.gpus, args.dag_seconds - elapsed, log_path)
        elapsed += seconds
    results = Path("results") / run
    times = job_times([str(p) for p in sorted((results / "benchmarks").rglob("*.tsv"))], str(args.out / "gpu_check_jobs.csv"))
    peaks = _peaks(results)
    write_csv(peaks, args.out / "gpu_check_memory.csv")
    summary = pd.DataFrame([{"device": throughput.device_name(device), "config": str(args.config),
                             "dag_seconds_limit": args.dag_seconds, "elapsed_s": round(elapsed, 1), "progress": progress,
                             "jobs_timed": len(times), "job_seconds_total": round(float(times["seconds"].sum()), 1),
                             "gpu_peak_mib_max": float(peaks["gpu_peak_mib"].max()) if len(peaks) else None,
                             "torch": torch.__version__}])
    write_csv(summary, args.out / "gpu_check_summary.csv")
    log.info("%s", summary.to_dict("records")[0])
    compare_estimate(args.config, throughput.device_name(device), args.out / "throughput.csv", times,
                     args.out / "gpu_check_estimate.csv")
    if args.certify_speed:
        root = yaml.safe_load(args.config.read_text()).get("data", {}).get("root")  # staged above, offline
        certify_speed.main(["--device", args.device, "--threads", "8", "--rounds", "3",
                            "--out", str(args.out / "certify.csv"), *(["--data-root", str(root)] if root else [])])


def compare_estimate(config: Path, device: str, rates: Path, times: pd.DataFrame, out: Path) -> pd.DataFrame | None:
    """The finished jobs beside their estimate on ``device`` (:func:`bench.workflow.estimate.compare`);
    logged per job kind. Skipped, with a warning, when the device's throughput is not in ``rates``."""
    from bench.workflow import estimate

    if not rates.exists():
        rates = estimate.THROUGHPUT
    try:
        frame = estimate.estimate(estimate.load_config(config), device, rates)
    except (FileNotFoundError, ValueError, KeyError) as exc:  # KeyError: an architecture not measured there
        log.warning("no estimate to compare with: %s", exc)
        return None
    both = estimate.compare(frame, times)
    write_csv(both, out)
    log.info("measured against estimated seconds per kind:\n%s", estimate.compare_by_kind(both).to_string())
    return both


if __name__ == "__main__":
    main()
