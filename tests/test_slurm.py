"""The DAG submitted for real to a one-node SLURM cluster through profiles/slurm.

profiles/slurm/localhost.sh starts munged, slurmctld and slurmd on this machine (root, Debian's
slurm-wlm and munge: ``make test`` installs them); the smoke config's Table 1 is built through
the profile for two of its methods (one that votes) and its rows must equal theirs in the
session's local smoke run (``smoke_run``, tests/conftest.py: the same config at ``--cores 2``).

The test cluster lives in a temporary directory of its own (config, munge key and socket, state,
ports away from SLURM's defaults, client wrappers that export its SLURM_CONF): a real SLURM or
munge on the machine must come out of the tests byte for byte as it went in, and its daemons
must still run.
"""
from __future__ import annotations

import os
import re
import shutil
import socket
import subprocess
import sys
import tempfile
from contextlib import contextmanager
from pathlib import Path

import pandas as pd
import pytest
from test_workflow import package_methods

ROOT = Path(__file__).resolve().parents[1]
SCRIPT = ROOT / "profiles" / "slurm" / "localhost.sh"
SNAKEMAKE = [sys.executable, "-m", "snakemake", "--snakefile", str(ROOT / "Snakefile"),
             "--configfile", str(ROOT / "config" / "smoke.yaml")]

# What a real installation keeps at the compiled-in defaults; the test cluster must not touch it.
REAL_FILES = [Path("/etc/slurm/slurm.conf"), Path("/etc/munge/munge.key")]
REAL_DIRS = [Path("/etc/slurm"), Path("/etc/munge"), Path("/run/munge")]
DAEMONS = {"slurmctld", "slurmd", "slurmdbd", "munged"}

pytestmark = pytest.mark.skipif(
    os.geteuid() != 0 or not all(shutil.which(c) for c in ("slurmctld", "slurmd", "munged")),
    reason="needs root and slurm-wlm + munge (installed by `make test` on Debian)",
)


def free_ports(n: int) -> list[int]:
    socks = []
    try:
        for _ in range(n):
            s = socket.socket()
            s.bind(("", 0))
            socks.append(s)
        return [s.getsockname()[1] for s in socks]
    finally:
        for s in socks:
            s.close()


def running_daemons() -> dict[int, str]:
    """PID -> name of every SLURM or munge daemon alive on this machine."""
    found = {}
    for proc in Path("/proc").iterdir():
        if proc.name.isdigit():
            try:
                name = (proc / "comm").read_text().strip()
                state = (proc / "stat").read_text().rsplit(")", 1)[1].split()[0]
            except (OSError, IndexError):
                continue
            if name in DAEMONS and state not in "ZX":  # a zombie is dead, only not yet reaped
                found[int(proc.name)] = name
    return found


@contextmanager
def local_cluster():
    """Start profiles/slurm/localhost.sh in a fresh directory; yield the environment that points
    the SLURM clients (and Snakemake's executor plugin) at it; stop it and delete the directory."""
    # /tmp and a short name: the munge socket's path must fit a sockaddr_un (108 bytes), and
    # munged wants every parent of its key root-owned or sticky
    base = Path(tempfile.mkdtemp(prefix="cprslurm-", dir="/tmp"))
    ctld_port, d_port = free_ports(2)
    env = {**os.environ, "CPR_SLURM_DIR": str(base), "CPR_SLURM_CTLD_PORT": str(ctld_port),
           "CPR_SLURM_D_PORT": str(d_port)}
    try:
        start = subprocess.run([str(SCRIPT), "start"], capture_output=True, text=True, timeout=180,
                               env=env)
        assert start.returncode == 0, start.stdout + start.stderr + logs(base)
        env["SLURM_CONF"] = str(base / "slurm.conf")
        env["PATH"] = f"{base / 'bin'}{os.pathsep}{env['PATH']}"
        yield env
    finally:
        subprocess.run([str(SCRIPT), "stop"], capture_output=True, text=True, timeout=120, env=env)
        shutil.rmtree(base, ignore_errors=True)


def logs(base: Path) -> str:
    out = ""
    for log in ("state/slurmctld.log", "state/slurmd.log", "munge/munged.log"):
        if (base / log).is_file():
            out += f"\n--- {log}\n" + (base / log).read_text(errors="replace")[-2000:]
    return out


def snapshot() -> dict:
    state = {}
    for path in REAL_FILES:
        if path.exists():
            st = path.stat()
            state[path] = (path.read_bytes(), st.st_mode, st.st_uid, st.st_gid, st.st_mtime_ns)
        else:
            state[path] = None
    for path in REAL_DIRS:
        state[path] = sorted(p.name for p in path.iterdir()) if path.is_dir() else None
    return state


@pytest.fixture(scope="module")
def cluster():
    with local_cluster() as env:
        yield env


def test_the_test_cluster_leaves_an_existing_slurm_and_munge_untouched():
    """Start, use and stop the test cluster beside a pre-existing /etc/slurm/slurm.conf (a sentinel
    if there is none) and munge key: both byte-identical afterwards, nothing added to /etc/slurm,
    /etc/munge or /run/munge, and every SLURM/munge daemon that ran before still runs."""
    conf = Path("/etc/slurm/slurm.conf")
    made_dir = not conf.parent.exists()
    made_conf = not conf.exists()
    if made_conf:
        conf.parent.mkdir(parents=True, exist_ok=True)
        conf.write_text("# sentinel of tests/test_slurm.py: a real cluster's config\nClusterName=real\n")
    try:
        before, daemons = snapshot(), running_daemons()
        with local_cluster() as env:
            # the executor plugin's job step drops SLURM_CONF before srun; PATH must carry it
            out = Path(env["CPR_SLURM_DIR"]) / "job.out"
            job = subprocess.run(
                ["sbatch", "--wait", "--output", str(out), "--wrap",
                 "env -u SLURM_CONF srun hostname && env -u SLURM_CONF scontrol show config"],
                capture_output=True, text=True, timeout=120, env=env)
            assert job.returncode == 0, job.stdout + job.stderr + logs(Path(env["CPR_SLURM_DIR"]))
            assert re.search(r"^ClusterName\s*=\s*cprbench$", out.read_text(), re.M), out.read_text()
            # a client started with a foreign SLURM_CONF still reaches the test cluster
            config = subprocess.run(["scontrol", "show", "config"], capture_output=True, text=True,
                                    timeout=60, env={**env, "SLURM_CONF": "/nonexistent"})
            assert config.returncode == 0, config.stderr
            assert re.search(r"^ClusterName\s*=\s*cprbench$", config.stdout, re.M), config.stdout
            assert re.search(rf"^SLURM_CONF\s*=\s*{re.escape(env['CPR_SLURM_DIR'])}/slurm.conf$",
                             config.stdout, re.M), config.stdout
            now = running_daemons()
            ours = {pid: name for pid, name in now.items() if pid not in daemons}
            assert set(ours.values()) >= {"slurmctld", "slurmd", "munged"}, now
        after = snapshot()
        for path in before:
            assert after[path] == before[path], f"{path} changed"
        assert not set(ours) & set(running_daemons()), "the test cluster's daemons outlived stop"
        still = running_daemons()
        for pid, name in daemons.items():
            assert still.get(pid) == name, f"{name} (PID {pid}), which ran before the test, is gone"
    finally:
        if made_conf:
            conf.unlink()
        if made_dir:
            conf.parent.rmdir()


#: the methods submitted: one plain and one that votes (the submission is the same for all nine;
#: the nine went through SLURM until 2026-12 and took 5.5 of the suite's 26 minutes)
SUBMITTED = ["erm", "ours"]
#: what depends on which other methods are in the table: the best of a column and the test against it
RELATIVE = ["best", "vs_best", "vs_best_p"]


@pytest.mark.slow
def test_smoke_table1_through_the_slurm_profile_equals_the_local_run(cluster, smoke_run, tmp_path):
    target = "reports/table1.csv"
    local, run = smoke_run  # the session's local smoke run (tests/conftest.py): same config, --cores 2
    assert (local / target).is_file(), run.stdout[-3000:] + run.stderr[-3000:]  # whatever else it failed on
    assert set(SUBMITTED) <= set(package_methods())
    slurm = tmp_path / "slurm"
    slurm.mkdir()
    env = {**cluster, "PYTHONPATH": str(ROOT)}
    submitted = subprocess.run(
        [*SNAKEMAKE, "--profile", str(ROOT / "profiles" / "slurm"), "--jobs", "2",
         "--slurm-init-seconds-before-status-checks", "2", target, "--config", f"methods=[{','.join(SUBMITTED)}]"],
        cwd=slurm, capture_output=True, text=True, timeout=1200, env=env)
    out = submitted.stdout + submitted.stderr
    assert submitted.returncode == 0, out[-5000:]
    # every non-local job went through sbatch: one training and one Table 1 job per method
    submitted_jobs = re.findall(r"has been submitted with SLURM jobid (\d+)", out)
    assert len(submitted_jobs) == 2 * len(SUBMITTED), out[-5000:]
    # each model's rows value for value, interval and code stamp as the local run's
    order = ["method", "dataset", "arch", "seed", "procedure", "metric"]
    ours = pd.read_csv(slurm / target).drop(columns=RELATIVE).sort_values(order, ignore_index=True)
    theirs = pd.read_csv(local / target).drop(columns=RELATIVE)
    theirs = theirs[theirs["method"].isin(SUBMITTED)].sort_values(order, ignore_index=True)
    assert sorted(ours["method"].unique()) == sorted(SUBMITTED)
    pd.testing.assert_frame_equal(ours, theirs)
