"""Issue 25's hardening: data roots cannot run code, GPU lock files cannot be redirected, `bench
run` clears only locks it can know dead, and corrupt result files are named and recomputed."""
from __future__ import annotations

import json
import os
import pickle
import socket
import subprocess
import sys
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from bench import data as bdata

ROOT = Path(__file__).resolve().parents[1]


# --- 1. a data root cannot run code -------------------------------------------------------------


class _Payload:
    """A pickle that, unpickled by ``pickle.load``, creates the file ``marker``."""

    def __init__(self, marker: Path):
        self.marker = marker

    def __reduce__(self):
        return (os.system, (f"touch {self.marker}",))


@pytest.mark.parametrize("how", ["load_split", "stage"])
def test_a_crafted_cifar_batch_in_a_synthetic_root_runs_no_code(tmp_path, how):
    from bench.data.synthetic import write_dataset

    root, marker = tmp_path / "data", tmp_path / "pwned"
    write_dataset("cifar10", root, per_class=2)  # marks the root SYNTHETIC: checksums are off
    batch = root / "cifar-10-batches-py" / "test_batch"
    batch.write_bytes(pickle.dumps({"data": _Payload(marker), "labels": [0]}, protocol=2))
    with pytest.raises(pickle.UnpicklingError, match=r"test_batch.*posix\.system|test_batch.*os\.system"):
        if how == "load_split":
            bdata.load_split("cifar10", "test", root, download=False)
        else:
            bdata.stage("cifar10", root)
    assert not marker.exists(), "the crafted batch ran its payload"


def test_cifar_batches_of_every_pickle_protocol_and_numpy_spelling_still_load(tmp_path):
    """The official release is a Python 2 pickle naming ``numpy.core.multiarray`` (numpy 1);
    synthetic files are protocol 4 with numpy scalars as labels: all load, to the same arrays."""
    from bench.data.safe_pickle import load_restricted

    data = np.arange(2 * 3072, dtype=np.uint8).reshape(2, 3072)
    entry = {"batch_label": "testing batch 1 of 1", "data": data, "labels": list(np.array([3, 7])),
             "filenames": [b"a.png", "b.png"]}
    for protocol in (2, 4, 5):
        blob = pickle.dumps(entry, protocol=protocol)
        if protocol == 2:  # what numpy 1 wrote
            blob = blob.replace(b"numpy._core.multiarray", b"numpy.core.multiarray")
        path = tmp_path / f"batch{protocol}"
        path.write_bytes(blob)
        got = load_restricted(path)
        assert np.array_equal(got["data"], data) and [int(x) for x in got["labels"]] == [3, 7]
        assert got["filenames"] == [b"a.png", "b.png"]
    from bench.data.synthetic import write_dataset

    write_dataset("cifar100", tmp_path / "data", per_class=1)
    assert len(bdata.load_split("cifar100", "test", tmp_path / "data", download=False)) == 100


# --- 2. GPU lease files cannot be redirected -------------------------------------------------


@pytest.fixture
def leases():
    """The lease list of bench.compute.device, with the leases a test takes closed afterwards."""
    import bench.compute.device as device

    held = len(device._LEASES)
    yield device
    for handle in device._LEASES[held:]:
        handle.close()
    del device._LEASES[held:]


def test_a_planted_lock_symlink_does_not_touch_its_target(tmp_path, leases):
    locks, victim = tmp_path / "locks", tmp_path / "victim"
    locks.mkdir(mode=0o700)
    victim.write_text("precious\n")
    (locks / "gpu-GPU-0.lock").symlink_to(victim)
    with pytest.raises(RuntimeError, match="gpu-GPU-0.lock"):
        leases.lease_gpu(["GPU-0"], locks)
    assert victim.read_text() == "precious\n"


def test_a_lock_folder_that_is_a_link_or_writable_by_others_is_refused(tmp_path, leases, monkeypatch):
    elsewhere = tmp_path / "attacker"
    elsewhere.mkdir(mode=0o700)
    # the default folder's predictable name, planted as a link before the first job
    monkeypatch.delenv("BENCH_GPU_LOCKS", raising=False)
    monkeypatch.setattr("tempfile.gettempdir", lambda: str(tmp_path))
    (tmp_path / f"bench-gpu-locks-{os.getuid()}").symlink_to(elsewhere)
    with pytest.raises(RuntimeError, match="not a plain folder"):
        leases.lease_gpu(["GPU-0"])
    assert not list(elsewhere.iterdir())
    shared = tmp_path / "shared"
    shared.mkdir()
    shared.chmod(0o777)
    with pytest.raises(RuntimeError, match="writable by group or others"):
        leases.lease_gpu(["GPU-0"], shared)
    assert not list(shared.iterdir())
    # a missing folder is made private, and leases work in it
    fresh = tmp_path / "fresh"
    assert leases.lease_gpu(["GPU-0"], fresh) == 0
    assert (fresh.stat().st_mode & 0o077) == 0


# --- 3. `bench run` clears only a lock it can know dead ----------------------------------------


@pytest.fixture
def locked(tmp_path, monkeypatch):
    """A working directory holding a Snakemake lock and no live Snakemake process; Snakemake
    itself replaced by a recorder of its command lines (and of the owner record while it runs)."""
    from bench import cli

    monkeypatch.chdir(tmp_path)
    (tmp_path / ".snakemake" / "locks").mkdir(parents=True)
    (tmp_path / ".snakemake" / "locks" / "0.input.lock").write_text("x\n")
    monkeypatch.setattr(cli.run, "_live_snakemake", lambda workdir: [])
    calls: list[tuple[list[str], dict | None]] = []

    def fake_run(cmd, *args, **kwargs):
        record = tmp_path / ".snakemake" / "bench-run-owner.json"
        calls.append((cmd, json.loads(record.read_text()) if record.exists() else None))
        return subprocess.CompletedProcess(cmd, 0, "", "")

    monkeypatch.setattr(subprocess, "run", fake_run)
    return tmp_path, calls


def _bench_run(*args: str) -> SystemExit:
    from bench import cli

    with pytest.raises(SystemExit) as stop:
        cli.main(["run", "--cores", "1", *args])
    return stop.value


def _owner_record(workdir: Path, host: str, pid: int, started: float) -> None:
    """The record a `bench run` killed with -9 leaves behind (bench.workflow.run_owner)."""
    (workdir / ".snakemake" / "bench-run-owner.json").write_text(json.dumps({"host": host, "pid": pid,
                                                                             "started": started}))


def test_a_lock_without_an_owner_record_is_left_to_the_user(locked):
    work, calls = locked
    stop = _bench_run()
    assert "snakemake --unlock" in str(stop.code) and "not left by" in str(stop.code)
    assert not calls  # neither --unlock nor the run


def test_a_lock_of_another_hosts_run_is_left_to_the_user(locked):
    work, calls = locked
    _owner_record(work, "node-b.cluster", 4242, 1.7e9)
    stop = _bench_run()
    assert "node-b.cluster" in str(stop.code) and "4242" in str(stop.code)
    assert "snakemake --unlock" in str(stop.code)
    assert not calls


def test_a_lock_of_a_live_bench_run_of_this_host_is_kept(locked):
    import psutil

    work, calls = locked
    live = subprocess.Popen(["sleep", "30"])
    try:
        _owner_record(work, socket.gethostname(), live.pid, psutil.Process(live.pid).create_time())
        stop = _bench_run()
        assert "still running" in str(stop.code) and str(live.pid) in str(stop.code)
        assert not calls
    finally:
        live.kill()
        live.wait()


def test_a_lock_of_a_killed_bench_run_of_this_host_is_cleared_and_the_run_records_itself(locked):
    import psutil

    work, calls = locked
    dead = subprocess.Popen(["true"])
    started = psutil.Process(dead.pid).create_time()
    dead.wait()
    _owner_record(work, socket.gethostname(), dead.pid, started)
    stop = _bench_run()
    assert stop.code == 0
    (unlock, _), (run, record) = calls
    assert "--unlock" in unlock and "--rerun-incomplete" in run
    # while Snakemake ran, the record named this process; afterwards it is gone
    assert record == {"host": socket.gethostname(), "pid": os.getpid(), "started": psutil.Process().create_time()}
    assert not (work / ".snakemake" / "bench-run-owner.json").exists()


# --- 4. corrupt result files -----------------------------------------------------------------


def _result(path: Path, rows: list[dict] | None = None) -> Path:
    from bench.io import write_json

    rows = rows if rows is not None else [{"method": "erm", "dataset": "mnist", "arch": "convnet", "seed": 0,
                                           "certified_robust_accuracy": 50.0}]
    return write_json({"rows": rows, "provenance": {"code": {"engine": "abc"}, "git_commit": "f00"}}, path)


def _inputs_csv(path: Path) -> Path:
    from bench.io import write_csv

    frame = pd.DataFrame({"method": "erm", "dataset": "mnist", "arch": "convnet", "seed": 0, "input": range(4),
                          "vicinity": "v", "kappa": 0.01, "alpha": 0.01, "procedure": "paper",
                          "outcome": "certified", "prediction": 1, "label": 1, "clean_prediction": 1})
    return write_csv(frame, path)


def _truncate(path: Path, size: int = 10) -> None:
    os.truncate(path, size)


def test_aggregating_a_truncated_result_names_the_file_and_the_fix(tmp_path):
    from bench.tables.base import certification_outcomes, read_rows

    good, cut = _result(tmp_path / "a" / "table1.json"), _result(tmp_path / "b" / "table1.json")
    _truncate(cut)
    assert len(read_rows([str(good)])) == 1
    with pytest.raises(ValueError, match=rf"{cut}.*python -m bench run"):
        read_rows([str(good), str(cut)])
    csv = _inputs_csv(tmp_path / "b" / "table1_inputs.csv")
    assert certification_outcomes([str(csv)], ["certified_robust_accuracy"], ["vicinity"])
    _truncate(csv, csv.stat().st_size - 7)  # cut mid-row: pandas alone would read it, short
    with pytest.raises(ValueError, match=rf"{csv}.*python -m bench run"):
        certification_outcomes([str(csv)], ["certified_robust_accuracy"], ["vicinity"])


def test_the_readers_accept_what_jobs_write_and_refuse_the_rest(tmp_path):
    from bench.io import CorruptResult, read_inputs_csv, read_result

    assert read_result(_result(tmp_path / "ok.json"))["rows"][0]["method"] == "erm"
    assert read_result(_result(tmp_path / "empty.json", rows=[]))["rows"] == []
    bad = {"list.json": "[1, 2]\n", "norows.json": '{"provenance": {}}\n', "rowtype.json":
           '{"rows": [1], "provenance": {}}\n', "noprov.json": '{"rows": []}\n', "empty.json": ""}
    for name, text in bad.items():
        (tmp_path / name).write_text(text)
        with pytest.raises(CorruptResult, match=name):
            read_result(tmp_path / name)
    assert len(read_inputs_csv(_inputs_csv(tmp_path / "t_inputs.csv"), ("input",))) == 4
    pd.DataFrame({"input": [], "outcome": []}).to_csv(tmp_path / "none_inputs.csv", index=False)
    assert read_inputs_csv(tmp_path / "none_inputs.csv").empty  # no inputs is not corrupt
    for name, text in {"e_inputs.csv": "", "nl_inputs.csv": "\n", "cut_inputs.csv": "input,outc",
                       "wide_inputs.csv": "input,outcome\n1,2,3\n"}.items():
        (tmp_path / name).write_text(text)
        with pytest.raises(CorruptResult, match=name):
            read_inputs_csv(tmp_path / name)
    with pytest.raises(CorruptResult, match="no column alpha"):
        read_inputs_csv(tmp_path / "none_inputs.csv", ("input", "alpha"))


def test_atomic_writes_reach_the_disk_before_the_rename(tmp_path, monkeypatch):
    from bench import io as bio

    events: list[str] = []
    real_fsync, real_replace = os.fsync, os.replace
    monkeypatch.setattr(os, "fsync", lambda fd: (events.append("fsync"), real_fsync(fd))[1])
    monkeypatch.setattr(os, "replace", lambda a, b: (events.append("replace"), real_replace(a, b))[1])
    bio.write_json({"rows": []}, tmp_path / "r.json")
    assert events[:2] == ["fsync", "replace"] and events.count("fsync") == 2  # the file, then its folder
    assert json.loads((tmp_path / "r.json").read_text()) == {"rows": []}


def test_corrupt_result_files_are_moved_aside_and_good_ones_kept(tmp_path, caplog):
    from bench.io import write_json
    from bench.workflow.integrity import quarantine_corrupt

    run = tmp_path / "results" / "x"
    m1, m2 = run / "mnist" / "erm" / "convnet" / "seed0", run / "mnist" / "ibp" / "convnet" / "seed0"
    good = [_result(m1 / "certify" / "table1.json"), _inputs_csv(m1 / "certify" / "table1_inputs.csv"),
            write_json({"arch": "convnet", "provenance": {}}, m1 / "model.json"),
            write_json({"key": "k", "units": {}}, m1 / "attacks" / "PGD.json.progress.json"),
            _result(m1 / "audit.json")]
    bad = [_result(m2 / "certify" / "table1.json"), _inputs_csv(m2 / "certify" / "table1_inputs.csv"),
           write_json({"arch": "convnet"}, m2 / "model.json"), _result(m2 / "attacks" / "PGD.json")]
    for path in bad:
        _truncate(path)
    write_json({"not": "rows"}, m2 / "native.json")  # a result without rows
    bad.append(m2 / "native.json")
    (run / "logs").mkdir()
    (run / "logs" / "train.log").write_text("")
    with caplog.at_level("WARNING"):
        moved = quarantine_corrupt(run)
    assert sorted(moved) == sorted(bad)
    for path in bad:
        assert not path.exists() and path.with_name(path.name + ".corrupt").exists()
        assert str(path) in caplog.text
    assert all(p.exists() for p in good)
    assert quarantine_corrupt(run) == [] and quarantine_corrupt(tmp_path / "nothing") == []


def test_the_results_folder_is_the_configs_run(tmp_path):
    from bench.workflow.integrity import results_folder

    (tmp_path / "config").mkdir()
    (tmp_path / "config" / "config.yaml").write_text("run: default\n")
    (tmp_path / "mine.yaml").write_text("run: mine\n")
    (tmp_path / "norun.yaml").write_text("seed: 1\n")
    assert results_folder(["--cores", "2"], tmp_path) == tmp_path / "results" / "default"
    assert results_folder(["--configfile", "mine.yaml", "--cores", "2"], tmp_path) == tmp_path / "results" / "mine"
    assert results_folder(["--configfile=norun.yaml"], tmp_path) is None
    assert results_folder(["--configfile", "mine.yaml", "--config", "run=over"], tmp_path) == \
        tmp_path / "results" / "over"
    assert results_folder(["--config", "run=../../etc"], tmp_path) is None  # one folder under results/, or none
    assert results_folder(["-d", "sub", "--config", "run=r"], tmp_path) == tmp_path / "sub" / "results" / "r"


def test_bench_run_moves_corrupt_results_aside_and_forces_their_jobs(tmp_path, monkeypatch):
    """Moved aside, a file is missing; Snakemake would still do nothing while what was built from
    it is present, so `bench run` forces the jobs of the moved files its DAG holds (and only those:
    a stale file of a table the config dropped has no rule, and --forcerun of it would stop the run)."""
    from bench import cli

    monkeypatch.chdir(tmp_path)
    (tmp_path / "c.yaml").write_text("run: x\n")
    cut = _result(tmp_path / "results" / "x" / "m" / "certify" / "table1.json")
    stale = _result(tmp_path / "results" / "x" / "m" / "certify" / "table99.json")
    progress = _result(tmp_path / "results" / "x" / "m" / "attacks" / "PGD.json.progress.json")
    for path in (cut, stale, progress):
        _truncate(path)
    calls = []

    def fake_run(cmd, *args, **kwargs):
        calls.append((cmd, cut.exists()))
        summary = ("output_file\tdate\trule\tlog-file(s)\tstatus\tplan\n"  # the DAG knows table1, not table99
                   "results/x/m/certify/table1.json\t-\tcertify\t\tmissing\tno update\n")
        return subprocess.CompletedProcess(cmd, 0, summary if "--summary" in cmd else "", "")

    monkeypatch.setattr(subprocess, "run", fake_run)
    with pytest.raises(SystemExit) as stop:
        cli.main(["run", "--cores", "1", "--configfile", "c.yaml", "-R", "train"])
    assert stop.value.code == 0
    (summary, _), (run, existed) = calls
    assert "--summary" in summary and not existed
    assert run[-4:] == ["--forcerun", "train", "results/x/m/certify/table1.json", "--rerun-incomplete"]
    for path in (cut, stale, progress):
        assert not path.exists() and path.with_name(path.name + ".corrupt").exists()


@pytest.mark.slow
def test_a_truncated_result_is_recomputed_by_bench_run_to_the_same_table(tmp_path):
    """End to end (about 75 s on 2 cores): the small config's Tables 1 and 12 through `bench run`;
    a certification result cut to 10 bytes; `bench run` again recomputes it, and Table 1 is the
    table of before."""
    from test_trust import TARGETS, small_config

    config = small_config(tmp_path / "c.yaml", run="cut")
    bench_run = [sys.executable, "-m", "bench", "run", "--snakefile", str(ROOT / "Snakefile"), "--cores", "2",
                 *TARGETS, "--configfile", str(config)]
    first = subprocess.run(bench_run, cwd=tmp_path, capture_output=True, text=True, timeout=600)
    assert first.returncode == 0, first.stdout[-3000:] + first.stderr[-3000:]
    before = pd.read_csv(tmp_path / "reports" / "table1.csv")
    cut = sorted((tmp_path / "results" / "cut").rglob("certify/table1.json"))[0]
    _truncate(cut)
    again = subprocess.run(bench_run, cwd=tmp_path, capture_output=True, text=True, timeout=600)
    assert again.returncode == 0, again.stdout[-3000:] + again.stderr[-3000:]
    assert f"corrupt result file {cut.relative_to(tmp_path)}" in again.stderr
    assert cut.is_file() and json.loads(cut.read_text())["rows"], again.stdout[-3000:] + again.stderr[-3000:]
    stamps = ["code", "model_code", "git_commit"]  # the code stamps: the checkout may change meanwhile
    after = pd.read_csv(tmp_path / "reports" / "table1.csv")
    pd.testing.assert_frame_equal(before.drop(columns=stamps, errors="ignore"),
                                  after.drop(columns=stamps, errors="ignore"))
