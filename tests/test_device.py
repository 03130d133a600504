"""A job that asks for a GPU never silently runs on the CPU."""
from __future__ import annotations

import pytest
import torch

from bench.device import resolve_device


def test_a_gpu_asked_for_and_missing_is_an_error_not_a_cpu_fallback(monkeypatch):
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    for kwargs in ({"device": "cuda"}, {"device": "cuda:1"}, {"device": None, "require_gpu": True}):
        with pytest.raises(RuntimeError, match="asks for a GPU .* none is usable"):
            resolve_device(**kwargs)
    assert resolve_device(None) == torch.device("cpu") and resolve_device("cpu") == torch.device("cpu")
