"""Staging datasets: one download per dataset under concurrent jobs, a clear error offline, and
``python -m bench data fetch --config``. Downloads are faked (no network in the tests): they
write tiny files in the real on-disk formats (conftest)."""
from __future__ import annotations

import logging
import multiprocessing
import socket
import threading
import time
import urllib.error
import urllib.request
from pathlib import Path

import pytest
import torch
import yaml
from conftest import make_mnist_like

from bench import cli
from bench import data as bdata
from bench.data import lock as datalock
from bench.data import staging


def fake_download(record: Path, delay: float = 0.5):
    """A stand-in for bench.data.staging.download: logs the call, takes a while, writes tiny MNIST."""

    def download(name, root, train, verify):
        with open(record, "a") as f:
            f.write(f"{name} {train}\n")
        time.sleep(delay)
        make_mnist_like(Path(root), bdata.FOLDERS[name], n_train=30, n_test=20)

    return download


def _load_in_child(root: str, barrier, out: str) -> None:
    barrier.wait()  # both processes reach the loader together
    split = bdata.load_split("mnist", "test", root)
    torch.save({"images": split.images, "labels": split.labels}, out)


def test_concurrent_jobs_download_a_dataset_once(tmp_path, monkeypatch):
    record, root = tmp_path / "downloads.txt", tmp_path / "data"
    monkeypatch.setattr(staging, "download", fake_download(record))  # inherited by the forked children
    monkeypatch.setattr(datalock, "LOCK_POLL_S", 0.05)
    ctx = multiprocessing.get_context("fork")
    barrier = ctx.Barrier(2)
    outs = [tmp_path / f"out{i}.pt" for i in range(2)]
    procs = [ctx.Process(target=_load_in_child, args=(str(root), barrier, str(o))) for o in outs]
    for p in procs:
        p.start()
    for p in procs:
        p.join(60)
    assert [p.exitcode for p in procs] == [0, 0]
    assert record.read_text().splitlines() == ["mnist False"]  # one download, not two
    a, b = (torch.load(o) for o in outs)
    assert len(a["labels"]) == 20
    assert torch.equal(a["images"], b["images"]) and torch.equal(a["labels"], b["labels"])
    assert (root / ".mnist.lock").exists() and (root / ".cache" / "mnist_test.safetensors").exists()


def test_reading_present_data_takes_no_lock(tiny_root, monkeypatch):
    make_mnist_like(tiny_root, "MNIST", n_train=10, n_test=10)
    first = bdata.load_split("mnist", "test", tiny_root, download=False)  # writes the cache, locked

    def no_lock(*args, **kwargs):
        raise AssertionError("the lock was taken to read data whose cache is current")

    from bench.data import loading
    monkeypatch.setattr(loading, "dataset_lock", no_lock)
    monkeypatch.setattr(staging, "dataset_lock", no_lock)
    again = bdata.load_split("mnist", "test", tiny_root, download=False)
    assert torch.equal(first.images, again.images)


def test_a_waiting_job_says_what_it_waits_for_and_gives_up_when_told(tiny_root, monkeypatch, caplog):
    monkeypatch.setattr(datalock, "LOCK_POLL_S", 0.02)
    monkeypatch.setattr(datalock, "LOCK_LOG_EVERY_S", 0.1)
    held, release = threading.Event(), threading.Event()

    def holder():
        with bdata.dataset_lock("cifar10", tiny_root, "downloading it"):
            held.set()
            release.wait(10)

    t = threading.Thread(target=holder)
    t.start()
    try:
        assert held.wait(10)
        caplog.set_level(logging.INFO, logger="bench.data.lock")
        with pytest.raises(bdata.DatasetLockTimeout, match=r"dataset 'cifar10'.*downloading it"):
            with bdata.dataset_lock("cifar10", tiny_root, timeout=0.3):
                pass
        waits = [r.getMessage() for r in caplog.records]
        assert any(m.startswith(f"dataset 'cifar10' under {tiny_root} is being downloaded or staged by pid ")
                   and "downloading it" in m for m in waits), waits
        assert any(m.startswith("still waiting for dataset 'cifar10'") for m in waits), waits
        monkeypatch.setenv("BENCH_DATA_LOCK_TIMEOUT", "0")  # no bound: waits until the holder is done
        threading.Timer(0.3, release.set).start()
        with bdata.dataset_lock("cifar10", tiny_root):
            assert release.is_set()
    finally:
        release.set()
        t.join()


@pytest.mark.parametrize("name", ["mnist", "cifar10"])
def test_offline_download_names_dataset_path_and_stage_command(tiny_root, monkeypatch, name):
    def offline(*args, **kwargs):
        raise urllib.error.URLError(socket.gaierror(-3, "Temporary failure in name resolution"))

    # torchvision's real download code, with no network under it (MNIST folds its mirrors'
    # URLErrors into one RuntimeError; CIFAR lets the URLError through)
    monkeypatch.setattr(urllib.request, "urlopen", offline)
    with pytest.raises(bdata.DatasetNotFoundError) as err:
        bdata.load_split(name, "test", tiny_root)
    msg = str(err.value)
    folder = tiny_root / bdata.FOLDERS[name]
    assert msg.startswith(f"dataset '{name}' not found under {folder} and it cannot be downloaded from here: "
                          "no network (")
    assert "Temporary failure in name resolution" in msg
    assert "python -m bench data fetch --config <config>" in msg
    assert f"python -m bench data fetch {name} --root {tiny_root}" in msg
    assert err.value.reason == "offline"


@pytest.mark.parametrize("error", [socket.timeout("timed out"), ConnectionRefusedError(111, "Connection refused")])
def test_timeouts_and_refused_connections_count_as_offline(tiny_root, monkeypatch, error):
    def download(*args):
        raise RuntimeError("download failed") from error

    monkeypatch.setattr(staging, "download", download)
    with pytest.raises(bdata.DatasetNotFoundError, match="no network") as err:
        bdata.load_split("mnist", "test", tiny_root)
    assert err.value.reason == "offline"


def test_a_server_error_is_not_called_offline(tiny_root, monkeypatch):
    def download(*args):
        raise urllib.error.HTTPError("https://example.org/x", 404, "Not Found", {}, None)

    monkeypatch.setattr(staging, "download", download)
    with pytest.raises(bdata.DatasetNotFoundError, match=r"could not be downloaded \(HTTPError: HTTP Error 404") as err:
        bdata.load_split("mnist", "test", tiny_root)
    assert err.value.reason == "failed" and "python -m bench data fetch mnist --root" in str(err.value)


def _config(tmp_path: Path, root: Path, datasets: list[str]) -> Path:
    path = tmp_path / "tiny.yaml"
    path.write_text(yaml.safe_dump({"run": "tiny", "data": {"root": str(root)}, "datasets": datasets}))
    return path


def test_fetch_config_stages_every_dataset_and_its_cache(tmp_path, monkeypatch, capsys):
    root = tmp_path / "data"
    record = tmp_path / "downloads.txt"
    monkeypatch.setattr(staging, "download", fake_download(record, delay=0))
    make_mnist_like(root, "FashionMNIST", n_train=20, n_test=10)  # on disk; mnist is not
    cli.main(["data", "fetch", "--config", str(_config(tmp_path, root, ["mnist", "fashion_mnist", "mnist"]))])
    out = capsys.readouterr().out.splitlines()
    assert out == [
        f"mnist: downloaded into {root / 'MNIST'}; 30 training and 20 test images; decoded cache written "
        f"({root / '.cache'})",
        f"fashion_mnist: files already under {root / 'FashionMNIST'}; 20 training and 10 test images; "
        f"decoded cache written ({root / '.cache'})",
    ]
    assert record.read_text().splitlines() == ["mnist True"]  # one download gets both splits
    for name in ("mnist", "fashion_mnist"):
        for split in ("train", "test"):
            assert (root / ".cache" / f"{name}_{split}.safetensors").exists()
    # staged: the jobs now read it with no network and no download
    monkeypatch.setattr(staging, "download", None)
    assert len(bdata.load_split("mnist", "val", root, download=False)) == 6
    cli.main(["data", "fetch", "mnist", "--root", str(root)])
    assert capsys.readouterr().out.endswith("30 training and 20 test images; decoded cache current "
                                            f"({root / '.cache'})\n")


def test_fetch_config_exits_non_zero_naming_what_it_could_not_stage(tmp_path, monkeypatch, capsys):
    root = tmp_path / "data"

    def offline(*args):
        raise urllib.error.URLError("[Errno 101] Network is unreachable")

    monkeypatch.setattr(staging, "download", offline)
    make_mnist_like(root, "MNIST", n_train=10, n_test=10)
    with pytest.raises(SystemExit) as exit_:
        cli.main(["data", "fetch", "--config", str(_config(tmp_path, root, ["mnist", "cifar10"]))])
    assert exit_.value.code == f"bench data fetch: 1 of 2 datasets not staged under {root} (cifar10); see above"
    out, err = capsys.readouterr()
    assert out.startswith("mnist: files already under")
    assert err.startswith(f"cifar10: NOT STAGED\ndataset 'cifar10' not found under {root / 'cifar-10-batches-py'} "
                          "and it cannot be downloaded from here: no network (URLError: <urlopen error [Errno 101] "
                          "Network is unreachable>).\n")
    with pytest.raises(SystemExit, match="--root goes with NAME"):
        cli.main(["data", "fetch", "--config", str(tmp_path / "tiny.yaml"), "--root", str(root)])
    with pytest.raises(SystemExit, match="give a dataset NAME or --config CONFIG"):
        cli.main(["data", "fetch"])
