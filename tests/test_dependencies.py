"""One dependency story: pyproject.toml declares every third-party package the code imports, with
a version range; ``make install`` (the Makefile) installs exactly those groups; envs/bench.yaml
(+ its post-deploy script) lists the same packages; and the installed versions satisfy the ranges.
"""
from __future__ import annotations

import ast
import importlib.metadata as md
import re
import shlex
import sys
import tomllib
from functools import cache
from pathlib import Path

import pytest
import yaml
from packaging.requirements import InvalidRequirement, Requirement
from packaging.utils import canonicalize_name

ROOT = Path(__file__).resolve().parents[1]
# every folder of Python code the project runs: the package, the methods, the tests, the
# benchmarks, the examples, the Snakemake rules and the scripts they call
CODE_DIRS = ["bench", "methods", "tests", "benchmarks", "examples", "rules", "scripts"]
SNAKEMAKE_FILES = ("Snakefile", ".smk")
# import name -> distribution, for packages that are not installed here (an installed one is
# looked up in its own metadata: importlib.metadata.packages_distributions)
IMPORT_TO_DIST = {"yaml": "pyyaml", "PIL": "pillow", "auto_LiRPA": "auto-LiRPA",
                  "sklearn": "scikit-learn", "cv2": "opencv-python", "skimage": "scikit-image"}
MAKEFILE = ROOT / "Makefile"
CONDA_ENV = ROOT / "envs" / "bench.yaml"
POST_DEPLOY = ROOT / "envs" / "bench.post-deploy.sh"


# --- what the code imports --------------------------------------------------------------------

def code_files() -> list[Path]:
    files = [ROOT / "Snakefile"]
    for d in CODE_DIRS:
        files += sorted(p for p in (ROOT / d).rglob("*") if p.is_file()
                        and (p.suffix in (".py", ".smk") or p.name == "Snakefile"))
    return [f for f in files if f.is_file()]


def snakemake_statements(text: str) -> list[ast.stmt]:
    """The import statements of a Snakefile or .smk file (Snakemake syntax is not Python: only the
    lines that start an import are parsed, with their continuation lines)."""
    lines, found, i = text.splitlines(), [], 0
    while i < len(lines):
        if re.match(r"\s*(import|from)\s+[\w.]", lines[i]):
            for j in range(i, min(i + 50, len(lines))):
                try:
                    found += ast.parse("\n".join(s.strip() for s in lines[i:j + 1])).body
                except SyntaxError:
                    continue
                i = j
                break
            else:
                raise AssertionError(f"cannot parse the import at line {i + 1}: {lines[i]!r}")
        i += 1
    return found


def imports(path: Path) -> set[str]:
    """Top-level names of the absolute imports anywhere in ``path`` (module level or not)."""
    text = path.read_text()
    if path.suffix == ".smk" or path.name == "Snakefile":
        nodes = [n for stmt in snakemake_statements(text) for n in ast.walk(stmt)]
    else:
        nodes = list(ast.walk(ast.parse(text, filename=str(path))))
    names = set()
    for node in nodes:
        if isinstance(node, ast.Import):
            names |= {a.name.split(".")[0] for a in node.names}
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            names.add(node.module.split(".")[0])
    return names


def own_modules() -> set[str]:
    """The project's packages and the modules its folders import from each other (tests import
    conftest, test_workflow ...)."""
    own = set(pyproject()["tool"]["setuptools"]["packages"])
    for d in CODE_DIRS:
        base = ROOT / d
        own |= {p.stem for p in base.rglob("*.py")}
        own |= {p.parent.name for p in base.rglob("__init__.py")}
    return own


def imported_distributions() -> dict[str, set[str]]:
    """Third-party import name -> the files that import it."""
    skip = set(sys.stdlib_module_names) | own_modules() | {"__future__"}
    found: dict[str, set[str]] = {}
    for path in code_files():
        for name in imports(path) - skip:
            found.setdefault(name, set()).add(str(path.relative_to(ROOT)))
    return found


@cache
def installed_packages() -> dict[str, list[str]]:
    return md.packages_distributions()


def distributions_of(import_name: str) -> set[str]:
    installed = installed_packages().get(import_name)
    if installed:
        return {canonicalize_name(d) for d in installed}
    return {canonicalize_name(IMPORT_TO_DIST.get(import_name, import_name))}


# --- what is declared and what installs it ----------------------------------------------------

@cache
def pyproject() -> dict:
    return tomllib.loads((ROOT / "pyproject.toml").read_text())


def groups() -> dict[str, list[Requirement]]:
    """'' (the dependencies) and every optional group -> its requirements."""
    project = pyproject()["project"]
    out = {"": [Requirement(r) for r in project.get("dependencies", [])]}
    for name, reqs in project.get("optional-dependencies", {}).items():
        out[name] = [Requirement(r) for r in reqs]
    return out


def declared() -> dict[str, Requirement]:
    out: dict[str, Requirement] = {}
    for reqs in groups().values():
        for req in reqs:
            name = canonicalize_name(req.name)
            assert name not in out, f"{req.name} is declared twice in pyproject.toml"
            out[name] = req
    return out


def pip_installs(path: Path, variables: dict[str, str] | None = None) -> list[dict]:
    """Every ``pip install`` command line of a Makefile or shell script: its extras of the project
    (``.[test]``), its requirements, and whether it ran with --no-deps."""
    text = path.read_text().replace("\\\n", " ")
    variables = dict(variables or {})
    if path.suffix != ".sh":
        for m in re.finditer(r"^([A-Za-z_]\w*)\s*:?=\s*(.*)$", text, re.M):
            variables[m.group(1)] = m.group(2).strip()
    out = []
    for line in text.splitlines():
        if "pip install" not in line or line.lstrip().startswith("#"):
            continue
        for _ in range(5):  # nested variables
            line = re.sub(r"\$\((\w+)\)", lambda m: variables.get(m.group(1), m.group(0)), line)
        tokens = shlex.split(line.split("pip install", 1)[1], comments=True)
        extras, reqs = set(), []
        for tok in tokens:
            m = re.fullmatch(r"\.\[([\w,\-]+)\]", tok)
            if m:
                extras |= set(m.group(1).split(","))
            elif not tok.startswith("-") and tok != ".":
                try:
                    reqs.append(Requirement(tok))
                except InvalidRequirement:
                    pass
        out.append({"extras": extras, "requirements": reqs, "no_deps": "--no-deps" in tokens})
    return out


def make_pins() -> dict[str, Requirement]:
    """The exact pins the Makefile passes to pip (torch's verified pair, auto-LiRPA)."""
    return {canonicalize_name(r.name): r for cmd in pip_installs(MAKEFILE) for r in cmd["requirements"]
            if any(s.operator == "==" for s in r.specifier)}


def conda_env() -> tuple[dict[str, Requirement], dict[str, Requirement]]:
    """envs/bench.yaml's pip requirements, and what its post-deploy script adds with --no-deps."""
    env = yaml.safe_load(CONDA_ENV.read_text())
    pip = next(d["pip"] for d in env["dependencies"] if isinstance(d, dict) and "pip" in d)
    listed = {}
    for entry in pip:
        if entry.startswith("-"):  # -e .. (the project itself), pip options
            continue
        req = Requirement(entry)
        listed[canonicalize_name(req.name)] = req
    post = {canonicalize_name(r.name): r for cmd in pip_installs(POST_DEPLOY) if cmd["no_deps"]
            for r in cmd["requirements"]}
    return listed, post


def installed_version(name: str) -> str | None:
    try:
        return md.version(name)
    except md.PackageNotFoundError:
        return None


# --- the checks -------------------------------------------------------------------------------

def test_the_scan_sees_the_code():
    """Guards the scan itself: it finds the packages the code is known to import."""
    found = imported_distributions()
    assert {"torch", "numpy", "yaml", "pytest", "snakemake", "auto_LiRPA"} <= set(found), sorted(found)
    assert not {"bench", "methods", "os", "conftest"} & set(found)


def test_every_imported_package_is_declared_in_pyproject():
    declared_names = set(declared())
    missing = {name: sorted(files) for name, files in imported_distributions().items()
               if not distributions_of(name) & declared_names}
    assert not missing, f"imported but not declared in pyproject.toml (import name: files): {missing}"


def test_every_declaration_has_a_range_and_make_install_installs_it():
    installs = pip_installs(MAKEFILE)
    extras = set().union(*(cmd["extras"] for cmd in installs))
    project_install = [cmd for cmd in installs if cmd["extras"]]
    assert project_install, "the Makefile does not pip install the project with its extras"
    no_deps = {canonicalize_name(r.name): r for cmd in installs if cmd["no_deps"]
               for r in cmd["requirements"]}
    for group, reqs in groups().items():
        for req in reqs:
            assert req.specifier, f"{req} ({group or 'dependencies'}): no version range"
        if group == "" or group in extras:
            continue
        # a group no resolver can install (auto-LiRPA asks for torch<1.13) must be installed by
        # the Makefile with --no-deps, exactly as declared
        for req in reqs:
            assert no_deps.get(canonicalize_name(req.name)) == req, (
                f"optional group {group!r} is neither installed as .[{group}] by the Makefile nor "
                f"`pip install --no-deps {req}` there")
    for name, pin in make_pins().items():
        req = declared().get(name)
        assert req is not None, f"the Makefile installs {pin}, which pyproject.toml does not declare"
        version = next(s.version for s in pin.specifier if s.operator == "==")
        assert req.specifier.contains(version, prereleases=True), (
            f"the Makefile installs {pin}, outside pyproject.toml's {req}")


def test_the_conda_env_lists_the_same_packages_as_pyproject():
    listed, post = conda_env()
    assert not set(listed) & set(post), "a package is both in bench.yaml and its post-deploy script"
    assert set(listed) | set(post) == set(declared()), (
        f"only in envs/bench.yaml (+ post-deploy): {sorted((set(listed) | set(post)) - set(declared()))}; "
        f"only in pyproject.toml: {sorted(set(declared()) - set(listed) - set(post))}")
    # the same ranges; the Makefile's exact pins where it has them
    pins = make_pins()
    for name, req in {**listed, **post}.items():
        expected = pins.get(name, declared()[name])
        assert (req.specifier, req.extras) == (expected.specifier, expected.extras), (
            f"envs/bench.yaml asks for {req}, the project for {expected}")


@pytest.mark.parametrize("source", ["pyproject.toml", "envs/bench.yaml"])
def test_the_installed_versions_satisfy_the_declared_ranges(source):
    if source == "pyproject.toml":
        reqs = declared()
    else:
        listed, post = conda_env()
        reqs = {**listed, **post}
    wrong = {}
    for name, req in reqs.items():
        if req.marker is not None and not req.marker.evaluate():
            continue
        version = installed_version(req.name)
        if version is None or not req.specifier.contains(version, prereleases=True):
            wrong[str(req)] = version or "not installed"
    assert not wrong, f"{source}: installed versions outside the declared ranges: {wrong}"
