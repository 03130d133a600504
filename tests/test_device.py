"""A job that asks for a GPU never silently runs on the CPU."""
from __future__ import annotations

import pytest
import torch

from bench.compute.device import resolve_device


def test_a_gpu_asked_for_and_missing_is_an_error_not_a_cpu_fallback(monkeypatch):
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    for kwargs in ({"device": "cuda"}, {"device": "cuda:1"}, {"device": None, "require_gpu": True}):
        with pytest.raises(RuntimeError, match="asks for a GPU .* none is usable"):
            resolve_device(**kwargs)
    assert resolve_device(None) == torch.device("cpu") and resolve_device("cpu") == torch.device("cpu")


def test_concurrent_jobs_lease_different_gpus_and_a_lease_ends_with_its_holder(tmp_path):
    import bench.compute.device as device

    gpus = ["GPU-aaaa", "GPU-bbbb", "GPU-cccc"]
    held = len(device._LEASES)
    assert [device.lease_gpu(gpus, tmp_path) for _ in gpus] == [0, 1, 2]  # each lease is an open lock
    device._LEASES.pop(-2).close()  # the job on GPU 1 ends
    assert device.lease_gpu(gpus, tmp_path) == 1
    # the same physical GPU under another index (another job's CUDA_VISIBLE_DEVICES) is still taken
    assert device.lease_gpu(["GPU-cccc", "GPU-dddd"], tmp_path) == 1
    for handle in device._LEASES[held:]:
        handle.close()
    del device._LEASES[held:]


def test_several_visible_gpus_give_each_job_a_leased_device(monkeypatch, tmp_path):
    import bench.compute.device as device

    monkeypatch.setenv("BENCH_GPU_LOCKS", str(tmp_path))
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    monkeypatch.setattr(torch.cuda, "device_count", lambda: 2)
    monkeypatch.setattr(torch.cuda, "set_device", lambda index: None)
    monkeypatch.setattr(device, "_uuid", lambda index: f"GPU-{index}")
    monkeypatch.setattr(device, "_LEASED", [])
    held = len(device._LEASES)
    # one process asking twice keeps its one lease (flock is per open file: a second lease would be another GPU)
    assert [resolve_device(None), resolve_device("cuda")] == [torch.device("cuda:0")] * 2
    monkeypatch.setattr(device, "_LEASED", [])  # another job's process: the next free GPU
    assert resolve_device(None) == torch.device("cuda:1")
    assert resolve_device("cuda:1") == torch.device("cuda:1")  # an explicit index is the user's choice
    for handle in device._LEASES[held:]:
        handle.close()
    del device._LEASES[held:]
