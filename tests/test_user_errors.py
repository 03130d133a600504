"""What a user gets wrong, refused or reported plainly (issue 25): vicinity samples outside [0, 1];
the command line's one-line errors, ``--debug``, pickled weights and the settings it states; the
API's data root and the progress of its attacks."""
from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

import pytest
import torch
from conftest import Constant, make_mnist_like
from torch import nn

from bench import api
from bench.certification.engine import CertifyConfig, certify_many
from bench.certification import streams
from bench.certification.vicinity import Vicinity, parse_vicinity
from bench.cli import main

ROOT = Path(__file__).resolve().parents[1]


# --- vicinity samples outside [0, 1] -----------------------------------------------------------


class Unclamped(Vicinity):
    """x + U[-shift, shift] per pixel, not clamped: leaves [0, 1] near 0 and 1."""

    spec = "unclamped:0.25"

    def __init__(self, shift: float = 0.25, scale: float = 1.0):
        self.shift, self.scale = shift, scale

    def __call__(self, x, n, generator=None):
        noise = torch.rand((x.shape[0], n, *x.shape[1:]), generator=generator, dtype=x.dtype)
        return (x.unsqueeze(1) + (2 * noise - 1) * self.shift) * self.scale


class FlatOnly:
    """A duck-typed sampler with ``flat`` only (bench.api takes one), returning NaN."""

    spec = "nan"

    def flat(self, x, n, generator=None):
        return torch.full((x.shape[0] * n, *x.shape[1:]), float("nan"))


def test_a_vicinity_sampling_outside_the_image_range_is_refused_naming_it_and_the_range():
    x = torch.rand(4, 1, 8, 8)
    x[0] = 0.0
    x[1] = 1.0
    with pytest.raises(ValueError, match=r"vicinity Unclamped 'unclamped:0.25' drew samples outside the image "
                                         r"range \[0, 1\]: min -0\.2\d*, max 1\.2\d*"):
        api.certify(Constant(), x, vicinity=Unclamped(), budget=1000)  # certified everywhere without the check
    with pytest.raises(ValueError, match=r"vicinity FlatOnly 'nan' drew samples outside .* min nan, max nan"):
        api.certify(Constant(), x, vicinity=FlatOnly(), num_classes=3, budget=1000)
    # inside [0, 1] up to the rounding tolerance: certified as before
    inside = Unclamped(shift=0.0, scale=1.0 + streams.SAMPLE_TOLERANCE / 2)
    assert api.certify(Constant(), x, vicinity=inside, budget=1000).frame["outcome"].eq("certified").all()


@pytest.mark.parametrize("spec", ["linf:1", "l2:10", "rotate:180", "translate:1", "scale:0.9", "affine"])
def test_every_built_in_vicinity_stays_inside_the_image_range(spec):
    vicinity = parse_vicinity(spec)
    x = torch.cat([torch.zeros(1, 1, 8, 8), torch.ones(1, 1, 8, 8), torch.rand(2, 1, 8, 8)])
    samples = vicinity(x, 64, torch.Generator().manual_seed(0))
    streams.check_samples(samples.flatten(0, 1), vicinity)
    assert 0.0 <= float(samples.min()) and float(samples.max()) <= 1.0
    # through the engine, with the valid and the paper's procedure on the shared tape
    configs = [CertifyConfig(procedure=p, budget=600, kappa=0.05) for p in ("paper", "mixture")]
    results, _ = certify_many(lambda t: torch.zeros(len(t), dtype=torch.long), x, vicinity, 3, configs,
                              progress=False)
    assert all(r.outcome.eq(0).all() for r in results)


# --- the command line: one line per error, --debug, pickles, the settings it states ------------


def _write_model(tmp_path: Path, body: str = "nn.Linear(28 * 28, 10)") -> Path:
    path = tmp_path / "my_model.py"
    path.write_text("import torch\nfrom torch import nn\n\n\n"
                    f"def build():\n    return nn.Sequential(nn.Flatten(), {body})\n\n\n"
                    "class Broken(nn.Module):\n    def forward(self, x):\n"
                    "        raise RuntimeError('this model always fails')\n")
    return path


def _build(path: Path) -> nn.Module:
    import importlib.util

    spec = importlib.util.spec_from_file_location("user_model_for_test", path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    torch.manual_seed(0)
    return module.build()


@pytest.fixture
def tiny_fashion(tmp_path: Path) -> Path:
    """A data root with 20 training and 10 test images in Fashion-MNIST's format (one per class)."""
    root = tmp_path / "data"
    make_mnist_like(root, "FashionMNIST", n_train=20, n_test=10)
    return root


def _one_line_error(capsys, argv: list[str]) -> str:
    with pytest.raises(SystemExit) as stop:
        main(argv)
    assert stop.value.code == 1
    out, err = capsys.readouterr()
    lines = err.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("bench: ") and "Traceback" not in err, err
    assert lines[0].endswith("(--debug shows the traceback)")
    return lines[0]


def test_a_missing_weights_file_is_one_line_and_its_traceback_is_behind_debug(tmp_path, capsys):
    model = _write_model(tmp_path)
    argv = ["certify", "--model", f"{model}:build", "--weights", str(tmp_path / "nope.safetensors")]
    line = _one_line_error(capsys, argv)
    assert line.startswith(f"bench: --weights {tmp_path / 'nope.safetensors'}: no such file")
    for debug in (["--debug", *argv], [*argv, "--debug"]):  # before or after the command
        with pytest.raises(FileNotFoundError, match="no such file"):
            main(debug)


def test_the_command_line_exits_1_with_one_line_and_with_the_traceback_under_debug(tmp_path):
    model = _write_model(tmp_path)
    argv = [sys.executable, "-m", "bench", "certify", "--model", f"{model}:build", "--weights",
            str(tmp_path / "nope.safetensors")]
    plain = subprocess.run(argv, cwd=ROOT, capture_output=True, text=True, timeout=120)
    assert plain.returncode == 1 and plain.stdout == ""
    assert plain.stderr.splitlines() == [f"bench: --weights {tmp_path / 'nope.safetensors'}: no such file "
                                         f"(--debug shows the traceback)"]
    debug = subprocess.run([*argv[:3], "--debug", *argv[3:]], cwd=ROOT, capture_output=True, text=True, timeout=120)
    assert debug.returncode == 1 and debug.stderr.startswith("Traceback (most recent call last):")
    assert debug.stderr.rstrip().endswith(f"FileNotFoundError: --weights {tmp_path / 'nope.safetensors'}: no such file")


@pytest.mark.parametrize("case, expected", [
    ("no_module", r"bench: --model no_such_module_xyz:build: importing no_such_module_xyz raised "
                  r"ModuleNotFoundError: No module named 'no_such_module_xyz'"),
    ("no_name", r"bench: --model .*my_model.py:nothing: .*my_model.py has no 'nothing'"),
    ("raises", r"bench: certifying --model .*my_model.py:Broken on fashion_mnist images of shape 1×28×28 raised "
               r"RuntimeError: this model always fails"),
    ("classes", r"bench: the model returns 5 logits per image, but fashion_mnist has 10 classes"),
    ("misfit", r"bench: --weights .*w.safetensors for --model .*my_model.py:build does not fit: missing keys: "
               r"1.bias, 1.weight"),
])
def test_each_expected_error_of_certify_is_one_line(tmp_path, tiny_fashion, capsys, case, expected):
    from safetensors.torch import save_file

    model = _write_model(tmp_path, "nn.Linear(28 * 28, 5)" if case == "classes" else "nn.Linear(28 * 28, 10)")
    save_file({"0.weight": torch.zeros(3, 3)}, str(tmp_path / "w.safetensors"))
    name = {"no_name": "nothing", "raises": "Broken"}.get(case, "build")
    spec = "no_such_module_xyz:build" if case == "no_module" else f"{model}:{name}"
    argv = ["certify", "--model", spec, "--root", str(tiny_fashion), "--per-class", "1", "--budget", "200"]
    if case == "misfit":
        argv += ["--weights", str(tmp_path / "w.safetensors")]
    assert re.match(expected, _one_line_error(capsys, argv))


@pytest.mark.parametrize("zipfile", [True, False], ids=["zip", "legacy"])
def test_a_pickled_checkpoint_is_named_a_pickle_with_the_conversion_that_works(tmp_path, capsys, zipfile):
    from bench.cli.certify import _user_model

    model = _write_model(tmp_path)
    state = _build(model).state_dict()
    torch.save(state, tmp_path / "w.pt", _use_new_zipfile_serialization=zipfile)
    with pytest.raises(SystemExit):
        main(["certify", "--model", f"{model}:build", "--weights", str(tmp_path / "w.pt")])
    err = capsys.readouterr().err
    first, *code, hint = err.strip().splitlines()
    assert first.startswith(f"bench: --weights {tmp_path / 'w.pt'} is a pickle (torch.save), not safetensors")
    assert "header too large" not in err and hint == "(--debug shows the traceback)"
    assert len(code) == 2 and "weights_only=True" in code[0] and "safetensors.torch.save_file" in code[1]
    # the two lines, as printed, convert it: the result loads, equal to the pickled weights
    import safetensors.torch

    exec("\n".join(line.strip() for line in code), {"torch": torch, "safetensors": safetensors})
    loaded = _user_model(f"{model}:build", tmp_path / "w.safetensors").state_dict()
    assert loaded.keys() == state.keys() and all(torch.equal(loaded[k], state[k]) for k in state)


def test_certify_help_names_kappa_alpha_and_the_procedures(capsys):
    with pytest.raises(SystemExit) as stop:
        main(["certify", "--help"])
    assert stop.value.code == 0
    help_text = " ".join(capsys.readouterr().out.split())  # argparse wraps lines
    for word in ("κ", "α", "--kappa", "--alpha", "--vicinity", "mixture", "sprt", "--debug"):
        assert word in help_text
    assert "paper: the paper's procedure" in help_text
    assert "NOT a valid sequential test at the stated α" in help_text


@pytest.mark.parametrize("procedure", ["paper", "mixture"])
def test_certify_states_the_vicinity_kappa_alpha_and_procedure_it_used(tmp_path, tiny_fashion, capsys, procedure):
    from safetensors.torch import save_file

    model = _write_model(tmp_path)
    save_file(_build(model).state_dict(), str(tmp_path / "w.safetensors"))
    main(["certify", "--model", f"{model}:build", "--weights", str(tmp_path / "w.safetensors"), "--root",
          str(tiny_fashion), "--per-class", "1", "--kappa", "0.1", "--alpha", "0.05", "--budget", "300",
          "--vicinity", "linf:0.05", "--procedure", procedure])
    out = capsys.readouterr().out.splitlines()
    assert out[0].startswith(f"certified --model {model}:build on 10 fashion_mnist test images: vicinity linf:0.05, "
                             f"κ = 0.1, α = 0.05, budget 300 samples per input")
    assert out[1].startswith(f"procedure {procedure}: ")
    assert ("NOT a valid sequential test at the stated α" in out[1]) == (procedure == "paper")
    assert any(line.startswith("certified_robustness_rate") for line in out[2:])


# --- the API: its data root, and the progress of attacks ----------------------------------------


def test_the_apis_data_root_is_bench_data_or_the_user_cache_never_the_working_directory(tmp_path, monkeypatch):
    from bench.data import default_root

    work, cache = tmp_path / "work", tmp_path / "cache"
    work.mkdir()
    monkeypatch.chdir(work)
    monkeypatch.delenv("BENCH_DATA", raising=False)
    monkeypatch.setenv("XDG_CACHE_HOME", str(cache))
    assert api.default_data_root() == cache / "cpr-bench" / "data"
    assert default_root() == Path("data")  # the command line's, the demo's: unchanged (the DAG passes its own)
    make_mnist_like(cache / "cpr-bench" / "data", "MNIST", n_train=20, n_test=10)
    split = api.load_split("mnist", "test", subset_per_class=1)
    assert len(split) == 10 and list(work.iterdir()) == []  # nothing written where it ran
    assert (cache / "cpr-bench" / "data" / ".cache").is_dir()  # the decoded cache went to the data root
    monkeypatch.setenv("XDG_CACHE_HOME", "relative/cache")  # not absolute: ignored, as XDG says
    assert api.default_data_root() == Path.home() / ".cache" / "cpr-bench" / "data"
    monkeypatch.setenv("BENCH_DATA", str(tmp_path / "bench-data"))
    assert api.default_data_root() == tmp_path / "bench-data"


def test_a_multi_batch_attack_shows_its_progress_on_stderr(capsys):
    x, y = torch.rand(5, 1, 8, 8), torch.tensor([1, 1, 0, 2, 1])
    result = api.attack(Constant(), x, y, attack="FGSM", eps=0.1, batch_size=2)
    err = capsys.readouterr().err  # (torchattacks prints a line of its own on stdout)
    assert "attack[FGSM]" in err and "0/5" in err
    assert len(result.frame) == 5
    api.attack(Constant(), x, y, attack="FGSM", eps=0.1, batch_size=2, progress=False)
    assert "attack[" not in capsys.readouterr().err


def test_the_demo_prints_a_table_a_terminal_can_show():
    """One row per procedure, each metric with its interval, under 120 characters a line, and
    what each procedure is (issue 25: the demo's table was 16 columns, about 330 characters)."""
    import argparse

    import pandas as pd

    from bench.cli.demo import _readable

    row = {"method": "ours", "vicinity": "linf:0.1", "kappa": 0.01, "alpha": 0.01, "inputs": 200, "mean_samples": 612.4}
    metrics = {"standard_accuracy": (80.0, 73.8, 85.3), "certified_robustness_rate": (61.5, 54.4, 68.3),
               "certified_robust_accuracy": (58.0, 50.8, 64.9)}
    summary = pd.DataFrame([{**row, "procedure": p, **{m: v for m, (v, _, _) in metrics.items()},
                             **{f"{m}_ci_low": lo for m, (_, lo, _) in metrics.items()},
                             **{f"{m}_ci_high": hi for m, (_, _, hi) in metrics.items()}} for p in ("paper", "mixture")])
    text = _readable(summary, argparse.Namespace(method="ours", dataset="fashion_mnist", vicinity="linf:0.1",
                                                 kappa=0.01, alpha=0.01))
    assert max(len(line) for line in text.splitlines()[:4]) < 120
    assert "80.0 [73.8, 85.3]" in text and "NOT a valid" in text and "mixture: a valid sequential test" in text
