"""The path contract (bench.paths): one module owns the results layout, and the shipped configs
plan exactly the recorded jobs."""
from __future__ import annotations

import ast
import re
from pathlib import Path

import pytest

from bench.paths import ModelRun, Output, model_file, output_kind, selection_file

ROOT = Path(__file__).resolve().parents[1]


def test_a_model_and_its_outputs_round_trip():
    model = ModelRun("smoke", "fashion_mnist", "ours", "convnet", 0)
    assert model.path() == "results/smoke/fashion_mnist/ours/convnet/seed0"
    cases = {("model", ""): "model.json", ("weights", ""): "model.safetensors", ("log", ""): "log.csv",
             ("certify", "table1"): "certify/table1.json", ("certify_inputs", "table1"): "certify/table1_inputs.csv",
             ("validation", ""): "certify/validation.json", ("attack", "AutoAttack"): "attacks/AutoAttack.json",
             ("audit", ""): "audit.json", ("native", ""): "native.json"}
    for (kind, name), file in cases.items():
        path = model.output(kind, name)
        assert path == f"{model.path()}/{file}"
        assert Output.parse(path) == Output(model, kind, name)
    assert model.log("certify_table1") == "results/smoke/logs/fashion_mnist/ours/convnet/seed0/certify_table1.log"
    assert model.benchmark("train") == "results/smoke/benchmarks/fashion_mnist/ours/convnet/seed0/train.tsv"
    for mirror in (model.log("train"), model.benchmark("attack_FGSM")):
        assert ModelRun.parse(mirror)[0] == model


def test_an_ablation_model_and_a_pattern():
    model = ModelRun("paper", "cifar10", "ours", "resnet18", 2, "lam", "0.25")
    assert model.path() == "results/paper/ablation/cifar10/ours/resnet18/lam-0.25/seed2"
    assert model.benchmark("train") == "results/paper/benchmarks/ablation/cifar10/ours/resnet18/lam-0.25/seed2/train.tsv"
    assert ModelRun.parse(model.output("attack", "AutoAttack")) == (model, "attacks/AutoAttack.json")
    assert ModelRun.of("paper", model.as_dict()) == model
    pattern = ModelRun.pattern("smoke", ablation=True)
    assert pattern.output("certify", "{table}") == \
        "results/smoke/ablation/{dataset}/{method}/{arch}/{hparam}-{value}/seed{seed}/certify/{table}.json"
    assert selection_file("smoke", "mnist", "erm", 1) == "results/smoke/mnist/erm/seed1/arch.json"


@pytest.mark.parametrize("path", ["reports/smoke/table1.csv", "results/smoke/fashion_mnist/ours/seed0/arch.json",
                                  "results/smoke/logs/report.log", "results/smoke/fashion_mnist/ours/convnet/seed0/x.txt"])
def test_paths_outside_the_layout_are_refused(path):
    with pytest.raises(ValueError):
        Output.parse(path)


def test_output_kind_reads_the_last_components_only():
    assert output_kind("/tmp/x/model.json") == "train"
    assert output_kind("anywhere/certify/table2.json") == "certify"
    assert output_kind("anywhere/certify/validation.json") == "validation"
    assert output_kind("anywhere/attacks/PGD.json") == "attack"
    assert output_kind("a/audit.json") == "audit"
    assert output_kind("a/other.json") == "other"
    assert model_file("some/folder", "weights") == Path("some/folder/model.safetensors")
    with pytest.raises(ValueError, match="known: model, weights, log"):
        model_file("some/folder", "audit")


# --- no path of the layout outside bench/paths.py ------------------------------------------------

#: what building or parsing a path of the results layout looks like in a string of code
LAYOUT = re.compile(r"results/|seed\{|/certify/|/attacks/|/benchmarks/|^(certify|attacks|benchmarks|logs)/|"
                    r"^(model\.json|model\.safetensors|log\.csv|audit\.json|native\.json|arch\.json|validation\.json)$|"
                    r"_inputs\.csv$")
#: places that still name files of the layout, each with the reason
ALLOWED = {
    # a benchmark's own scratch model, not a run's
    "benchmarks/certify_speed.py",
    # the readers say which file they check
    "bench/io.py",
}


def _code_strings(path: Path) -> list[tuple[int, str]]:
    """The string constants of a module's code (docstrings left out), each f-string as one
    template with ``{}`` where it formats a value."""
    tree = ast.parse(path.read_text())
    skip = {id(node.body[0].value) for node in ast.walk(tree)
            if isinstance(node, (ast.Module, ast.ClassDef, ast.FunctionDef, ast.AsyncFunctionDef))
            and node.body and isinstance(node.body[0], ast.Expr)
            and isinstance(node.body[0].value, ast.Constant) and isinstance(node.body[0].value.value, str)}
    found = []
    for node in ast.walk(tree):
        if isinstance(node, ast.JoinedStr):
            skip |= {id(v) for v in node.values}
            found.append((node.lineno, "".join(v.value if isinstance(v, ast.Constant) else "{}" for v in node.values)))
    found += [(node.lineno, node.value) for node in ast.walk(tree)
              if isinstance(node, ast.Constant) and isinstance(node.value, str) and id(node) not in skip]
    return found


def test_no_path_of_the_layout_is_built_or_parsed_outside_bench_paths():
    found = []
    for path in sorted([*ROOT.glob("bench/**/*.py"), *ROOT.glob("methods/*.py"), *ROOT.glob("scripts/*.py"),
                        *ROOT.glob("benchmarks/*.py")]):
        rel = path.relative_to(ROOT).as_posix()
        if rel == "bench/paths.py" or rel in ALLOWED:
            continue
        # a string with spaces is a message, not a path
        found += [f"{rel}:{line}: {text!r}" for line, text in _code_strings(path)
                  if LAYOUT.search(text) and not re.search(r"\s", text)]
        found += [f"{rel}:{n}: split('/')" for n, line in enumerate(path.read_text().splitlines(), 1)
                  if re.search(r"""split\(["']/["']\)""", line)]
    for path in [ROOT / "Snakefile", *ROOT.glob("rules/*.smk")]:
        for n, line in enumerate(path.read_text().splitlines(), 1):
            code = line.split("#", 1)[0]
            if re.search(r"results/|seed\{|/certify/|/attacks/|\.json\"|\.tsv\"|\.log\"|split\(", code):
                found.append(f"{path.relative_to(ROOT)}:{n}: {line.strip()}")
    assert not found, "paths of the results layout built outside bench/paths.py:\n" + "\n".join(found)


def test_the_layout_check_sees_a_path_built_by_hand(tmp_path):
    """The check above is no check if it cannot see the pattern it looks for."""
    module = tmp_path / "m.py"
    module.write_text('"""Doc naming results/x."""\nname = "seed0"\np = f"{root}/{run}/seed{seed}/x"\nq = "model.json"\n')
    hits = [t for _, t in _code_strings(module) if LAYOUT.search(t)]
    assert hits == ["{}/{}/seed{}/x", "model.json"]


# --- the shipped configs plan the recorded jobs ---------------------------------------------------


@pytest.mark.parametrize("name", ["config", "smoke", "reference", "paper"])
def test_each_shipped_config_plans_the_recorded_jobs(name):
    """``snakemake -n`` lists the same jobs, files, wildcards and resources as recorded in
    ``tests/plans/<config>.jobs.gz`` (written by ``tests/plans.py --write`` where a change means
    to change the plan)."""
    from plans import golden, planned_jobs

    now, recorded = planned_jobs(ROOT / "config" / f"{name}.yaml"), golden(name)
    gone, new = sorted(set(recorded) - set(now)), sorted(set(now) - set(recorded))
    assert not gone and not new, (f"{len(gone)} recorded jobs no longer planned, {len(new)} new; first of each:\n"
                                  f"{gone[:1]}\n{new[:1]}\n(a change that means this: tests/plans.py --write)")
    assert len(now) == len(recorded)


def test_a_table_plugin_of_the_old_api_still_works_and_is_told_what_replaced_it():
    """``from bench.workflow.plan import result_dir`` (docs/extending.md before the path contract) keeps
    working, with a DeprecationWarning that names the replacement."""
    import bench.workflow.plan as plan

    run = {"dataset": "fashion_mnist", "method": "erm", "arch": "convnet", "seed": 1}
    with pytest.warns(DeprecationWarning, match=r"bench\.paths\.ModelRun\.of"):
        result_dir = plan.result_dir
    assert result_dir({"run": "smoke"}, run) == ModelRun.of("smoke", run).path()
    with pytest.raises(AttributeError):
        plan.no_such_name  # noqa: B018
