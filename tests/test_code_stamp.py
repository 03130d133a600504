"""The code stamp hashes what executes: an edit of a docstring or a comment reruns nothing.

Issue 25: a docstring-only edit of ``methods/trades.py`` reran its 42 jobs, one of
``bench/certification/sequential.py`` 80 certifications, because the stamp hashed each file's bytes.
"""
from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from bench.workflow import plan, provenance

ROOT = Path(__file__).resolve().parents[1]

CORE = '''"""A module docstring."""
import math  # a comment

SCALE = 2.0


class Scaler:
    """A class docstring."""

    def apply(self, x):
        """A method docstring."""
        return SCALE * x  # times the scale


async def later(x):
    """An async docstring."""
    return math.sqrt(x)


def only_documented():
    """Nothing but a docstring."""
'''

JOB = '''"""The job."""


def run(x):
    from .core import Scaler  # a lazy, relative import: it counts

    return Scaler().apply(x)
'''


def _clear_caches():
    provenance._origin.cache_clear()
    analysed = getattr(provenance, "_analysed", None)
    if analysed is not None:
        analysed.cache_clear()
    plan._stamp.cache_clear()


@pytest.fixture
def fresh_caches():
    """Empty the stamp caches before and after (requested first: torn down after monkeypatch)."""
    _clear_caches()
    yield
    _clear_caches()


@pytest.fixture
def package(fresh_caches, tmp_path, monkeypatch):
    """A tiny project package ``stamppkg`` (``job`` imports ``core``) on sys.path."""
    pkg = tmp_path / "stamppkg"
    pkg.mkdir()
    (pkg / "__init__.py").write_text("")
    (pkg / "core.py").write_text(CORE)
    (pkg / "job.py").write_text(JOB)
    monkeypatch.syspath_prepend(str(tmp_path))
    monkeypatch.setattr(provenance, "PROJECT", (*provenance.PROJECT, "stamppkg"))
    return pkg


def test_docstring_and_comment_edits_keep_the_stamp_and_a_real_change_changes_it(package):
    assert set(provenance.module_closure(("stamppkg.job",))) == {"stamppkg.job", "stamppkg.core"}
    core = package / "core.py"
    before = provenance.code_stamp("stamppkg.job")
    edits = {
        "module docstring": CORE.replace("A module docstring.", "The module docstring,\n\nreworded."),
        "class docstring": CORE.replace("A class docstring.", "Scales."),
        "method docstring": CORE.replace("A method docstring.", "Multiplies by ``SCALE``."),
        "async docstring": CORE.replace("An async docstring.", "Square root, later."),
        "docstring-only body": CORE.replace("Nothing but a docstring.", "Still nothing."),
        "comments": CORE.replace("# a comment", "# another comment").replace("# times the scale", "")
        + "\n# a trailing comment\n",
        "lines moved": "\n\n" + CORE.replace("SCALE = 2.0\n", "\n\nSCALE = 2.0\n\n"),
    }
    for what, text in edits.items():
        core.write_text(text)
        assert provenance.code_stamp("stamppkg.job") == before, what
    (package / "job.py").write_text(JOB.replace('"""The job."""', '"""The job, documented better."""'))
    assert provenance.code_stamp("stamppkg.job") == before, "docstring of the stamped module itself"
    real = {
        "constant": CORE.replace("SCALE = 2.0", "SCALE = 3.0"),
        "statement": CORE.replace("return SCALE * x", "return SCALE * x + 0"),
        "string that is not a docstring": CORE.replace("return math.sqrt(x)", 'return math.sqrt(x) or "a"'),
        "code in place of a docstring": CORE.replace('"""Nothing but a docstring."""', "return 1"),
    }
    for what, text in real.items():
        core.write_text(text)
        assert provenance.code_stamp("stamppkg.job") != before, what
    # the module name still enters the stamp, and a fresh process (other hash seed) agrees
    core.write_text(edits["method docstring"])
    stamp = provenance.code_stamp("stamppkg.job")
    env = {**os.environ, "PYTHONHASHSEED": "12345",
           "PYTHONPATH": os.pathsep.join([str(package.parent), str(ROOT), os.environ.get("PYTHONPATH", "")])}
    script = ("from bench import provenance; provenance.PROJECT = (*provenance.PROJECT, 'stamppkg'); "
              "print(provenance.code_stamp('stamppkg.job'))")
    out = subprocess.run([sys.executable, "-c", script], env=env, capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stderr[-2000:]
    assert out.stdout.strip() == stamp == before


def test_a_docstring_edit_plans_no_job_and_a_real_change_exactly_its_dependents(fresh_caches, tmp_path, monkeypatch):
    """The params of every job kind of ``trades`` (``bench.workflow.plan.code_version``, what Snakemake's
    params trigger compares) stay the same after a docstring edit of ``methods/trades.py``; a
    code edit changes those of the kinds that run the method, and not the certifications'."""
    source = Path(provenance._origin("methods.trades")).read_text()
    before = {kind: plan.code_version(kind, "trades") for kind in plan.JOB_MODULES}
    copy = tmp_path / "trades.py"
    real = provenance._origin

    def origin(name):
        return copy if name == "methods.trades" else real(name)

    monkeypatch.setattr(provenance, "_origin", origin)
    documented = source.replace('"""TRADES (Zhang et al. 2019)', '"""TRADES (Zhang, Yu, Jiao, Xing, Ghaoui, Jordan)', 1)
    assert documented != source
    copy.write_text(documented + "\n# a comment\n")
    plan._stamp.cache_clear()
    assert {kind: plan.code_version(kind, "trades") for kind in plan.JOB_MODULES} == before  # no job reruns
    changed = source.replace('"beta": 6.0', '"beta": 5.0', 1)
    assert changed != source
    copy.write_text(changed)
    plan._stamp.cache_clear()
    after = {kind: plan.code_version(kind, "trades") for kind in plan.JOB_MODULES}
    rerun = {kind for kind in plan.JOB_MODULES if after[kind] != before[kind]}
    assert "train" in rerun and "certify" not in rerun and "certifications" not in rerun
    assert rerun == plan.USES_METHOD  # the kinds that run the method's module, no other
