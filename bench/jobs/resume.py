"""Resuming a killed evaluation job: its progress, saved beside its output after every unit of
work (an attack's batch, a certification's block of inputs), and read back by the rerun.

A progress file is JSON (no pickle), written atomically, keyed by a hash of the job's settings
and code stamps (a file from other settings or code is ignored), and removed once the job's
output is written. A resumed job gives the result of an uninterrupted one because units are
fixed by the settings (never by where a job was killed) and each unit's random streams are
either restored (:class:`Progress`) or fixed by the seed and each input's index (a
certification's blocks, :class:`Units`: :class:`bench.certification.streams.SampleTape`).
"""
from __future__ import annotations

import base64
import hashlib
import json
import logging
from pathlib import Path
from typing import Any

import numpy as np
import torch

from bench.io import write_json

__all__ = ["Progress", "Units", "settings_key"]

log = logging.getLogger(__name__)


def settings_key(key: dict) -> str:
    """The hash that ties a progress file to one job's settings and code."""
    return hashlib.sha256(json.dumps(key, sort_keys=True, default=str).encode()).hexdigest()


def _state(t: torch.Tensor) -> str:
    return base64.b64encode(t.cpu().numpy().tobytes()).decode()


def _tensor(text: str) -> torch.Tensor:
    return torch.frombuffer(bytearray(base64.b64decode(text)), dtype=torch.uint8)


def _numpy_state() -> dict:
    """numpy's global generator (Pixle and OnePixel of torchattacks draw from it), as JSON."""
    _, keys, pos, has_gauss, cached = np.random.get_state()
    return {"keys": base64.b64encode(keys.astype("<u4").tobytes()).decode(), "pos": int(pos),
            "has_gauss": int(has_gauss), "cached": float(cached)}


def _set_numpy_state(state: dict) -> None:
    keys = np.frombuffer(base64.b64decode(state["keys"]), dtype="<u4").astype(np.uint32)
    np.random.set_state(("MT19937", keys, state["pos"], state["has_gauss"], state["cached"]))


class Progress:
    """An attack job's progress: batches done, their per-input outcomes, seconds spent, and the
    states of the random-number generators the attack and the method's vote draw from (torch's,
    numpy's global one, the method's own).

    Stored as ``<output>.progress.json`` (JSON, no pickle), written atomically after each batch,
    removed when the job's output is written; a file from other settings or code is ignored.
    """

    def __init__(self, output: str | Path, key: dict, generators: dict[str, torch.Generator],
                 device: torch.device | str | None = None):
        """``device``: the job's device; on CUDA its default generator's state is kept too (only
        that GPU's: a rerun may lease another GPU, or see fewer, than the killed run)."""
        self.path = Path(f"{output}.progress.json")
        self.key = settings_key(key)
        self.generators = generators
        self.cuda = torch.device(device) if device is not None and torch.device(device).type == "cuda" else None

    def load(self) -> tuple[int, list[bool], float]:
        """(batches done, outcomes so far, seconds so far), restoring the generators; (0, [], 0)
        when there is nothing to resume."""
        if not self.path.exists():
            return 0, [], 0.0
        data = json.loads(self.path.read_text())
        if data.get("key") != self.key:
            log.warning("%s belongs to other settings or code: starting over", self.path)
            return 0, [], 0.0
        torch.set_rng_state(_tensor(data["rng"]["torch"]))
        if "numpy" in data["rng"]:
            _set_numpy_state(data["rng"]["numpy"])
        if self.cuda is not None and "cuda" in data["rng"]:
            torch.cuda.set_rng_state(_tensor(data["rng"]["cuda"]), self.cuda)
        for name, gen in self.generators.items():
            gen.set_state(_tensor(data["rng"][name]))
        log.info("resuming after batch %d (%d inputs done)", data["batches"], len(data["correct"]))
        return int(data["batches"]), [bool(c) for c in data["correct"]], float(data["seconds"])

    def save(self, batches: int, correct: list[bool], seconds: float) -> None:
        rng = {"torch": _state(torch.get_rng_state()), "numpy": _numpy_state(),
               **{name: _state(gen.get_state()) for name, gen in self.generators.items()}}
        if self.cuda is not None:
            rng["cuda"] = _state(torch.cuda.get_rng_state(self.cuda))
        write_json({"key": self.key, "batches": batches, "correct": [int(c) for c in correct], "seconds": seconds,
                    "rng": rng}, self.path)

    def done(self) -> None:
        self.path.unlink(missing_ok=True)


class Units:
    """Finished units of a job, each with its JSON-able result, stored as ``<output>.progress.json``.

    ``get(name)`` is the result of a unit finished before the job was killed (None otherwise);
    ``put(name, result)`` records one atomically; ``done()`` removes the file.
    """

    def __init__(self, output: str | Path, key: dict):
        self.path = Path(f"{output}.progress.json")
        self.key = settings_key(key)
        self.results: dict[str, Any] = {}
        if self.path.exists():
            data = json.loads(self.path.read_text())
            if data.get("key") == self.key:
                self.results = data["units"]
                log.info("resuming: %d units already done", len(self.results))
            else:
                log.warning("%s belongs to other settings or code: starting over", self.path)

    def get(self, name: str) -> Any | None:
        return self.results.get(name)

    def put(self, name: str, result: Any) -> None:
        self.results[name] = result
        write_json({"key": self.key, "units": self.results}, self.path)

    def done(self) -> None:
        self.path.unlink(missing_ok=True)
