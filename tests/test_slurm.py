"""The DAG submitted for real to a one-node SLURM cluster through profiles/slurm.

profiles/slurm/localhost.sh starts munged, slurmctld and slurmd on this machine (root, Debian's
slurm-wlm and munge: ``make test`` installs them); the smoke config's Table 1 is built once
through the profile and once locally, and the two tables must be equal.
"""
from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pandas as pd
import pytest

from test_workflow import package_methods

ROOT = Path(__file__).resolve().parents[1]
SCRIPT = ROOT / "profiles" / "slurm" / "localhost.sh"
SNAKEMAKE = [sys.executable, "-m", "snakemake", "--snakefile", str(ROOT / "Snakefile"),
             "--configfile", str(ROOT / "config" / "smoke.yaml")]

pytestmark = pytest.mark.skipif(
    os.geteuid() != 0 or shutil.which("slurmctld") is None,
    reason="needs root and slurm-wlm + munge (installed by `make test` on Debian)",
)


@pytest.fixture(scope="module")
def cluster():
    start = subprocess.run([str(SCRIPT), "start"], capture_output=True, text=True, timeout=180)
    assert start.returncode == 0, start.stdout + start.stderr
    yield
    subprocess.run([str(SCRIPT), "stop"], capture_output=True, text=True, timeout=60)


def test_smoke_table1_through_the_slurm_profile_equals_the_local_run(cluster, tmp_path):
    target = "reports/table1.csv"
    local, slurm = tmp_path / "local", tmp_path / "slurm"
    local.mkdir()
    slurm.mkdir()
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    run = subprocess.run([*SNAKEMAKE, "--cores", "2", target], cwd=local, capture_output=True, text=True,
                         timeout=900)
    assert run.returncode == 0, run.stdout[-3000:] + run.stderr[-3000:]
    submitted = subprocess.run(
        [*SNAKEMAKE, "--profile", str(ROOT / "profiles" / "slurm"), "--jobs", "2",
         "--slurm-init-seconds-before-status-checks", "2", target],
        cwd=slurm, capture_output=True, text=True, timeout=1200, env=env)
    out = submitted.stdout + submitted.stderr
    assert submitted.returncode == 0, out[-5000:]
    # every non-local job went through sbatch: one training and one Table 1 job per method
    submitted_jobs = re.findall(r"has been submitted with SLURM jobid (\d+)", out)
    assert len(submitted_jobs) == 2 * len(package_methods()), out[-5000:]
    pd.testing.assert_frame_equal(pd.read_csv(local / target), pd.read_csv(slurm / target))
