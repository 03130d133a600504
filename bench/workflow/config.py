"""The config's meaning, checked when the DAG is built.

``config/schema.yaml`` checks the config's shape (keys, types, ranges); :func:`check_config`
checks what the values mean, before Snakemake schedules a single job: that plugins load and
methods exist, that hyperparameter overrides name hyperparameters and lie in the ranges their
methods declare (:class:`bench.training.method.Range`: NaN, a negative weight or zero samples
would only fail inside a job, or not at all), that architectures exist (a ``timm:<name>``
misspelt, with timm's close names; a ``models:`` entry's own ``FILE.py:FUNCTION`` builds a
module that gives one logit per class), that vicinity specs parse, that the certification budget can
certify at every (κ, α) the configured tables use, and so on.
Every problem is collected and reported at once in a :class:`ConfigError`, one line each, in the
form ``<key>: <value> <what is wrong>; allowed: <what is allowed>``, for example::

    hparams.ours.n_sample: 8 is not a hyperparameter of method 'ours'; allowed: lam, n_samples, vote_samples

The Snakefile calls it right after the schema validation, so a typo stops ``snakemake -n``
instead of failing inside a job after others have started (or being silently ignored where
results already exist).

**Datasets.** The jobs read data through :func:`bench.data.load_split` with its default
``download=True``: a dataset that is not under ``data.root`` is downloaded through torchvision
by the first job that needs it (Fashion-MNIST is first staged from the Debian package
``dataset-fashion-mnist`` when that is installed). Whether the network will allow the download
cannot be told cheaply or reliably when the DAG is built (a cluster's compute nodes may be
offline while its login node is not, and the reverse), so a missing dataset that the jobs could
still download is *not* an error here, only a :class:`ConfigWarning` naming the folder looked at
and the command that fetches it now. It is an error only where the loader certainly cannot get
the data: ``data.root`` is not a directory, or it cannot be created or written (a download, the
Debian staging and the decoded cache all write under it). A system folder (``/``, ``/etc``,
``/usr``, …, links followed) is refused as ``data.root`` whether or not it can be written: run as
root, the jobs would write datasets into it. This keeps ``snakemake -n --configfile
config/paper.yaml`` working on a machine without MNIST, SVHN and CIFAR, as it must: those jobs
download their data when they run.

**Budget.** A sequential test can certify only after a minimum number of samples, all agreeing
(:attr:`bench.certification.sequential.SequentialTest.min_certify`; ⌈ln α / ln(1−κ)⌉ = 459 for the paper's
test at κ = α = 0.01). Below it every input comes out "not certified", which looks like a result.
The minimum is found with :func:`bench.certification.sequential.make_test` itself, on budgets growing from
⌈ln α / ln(1−κ)⌉, and cached per (procedure, κ, α): a test's thresholds at n samples do not
depend on its budget, so neither does the minimum, and one search serves every budget.
"""
from __future__ import annotations

import difflib
import functools
import math
import os
import re
import warnings
from collections.abc import Iterable
from pathlib import Path
from typing import Any

from bench.certification.sequential import make_test, n_min
from bench.certification.vicinity import L2Ball, LinfBall, parse_vicinity
from bench.data import DATASETS, FILES, FOLDERS, dataset_available, dataset_info
from bench.models import MODELS
from bench.paths import Output
from bench.training import METHODS, available_methods, get_method, load_plugin, shape_group
from bench.workflow.extensions import load_extensions

__all__ = ["ConfigError", "ConfigWarning", "check_config", "min_samples"]

_VICINITY_FORMS = ("linf:<eps>, l2:<eps>, rotate:<degrees>, translate:<fraction>, scale:<fraction>, "
                   "affine or affine:rotate=<degrees>,translate=<fraction>,scale=<fraction>")
_SEARCH_CAP = 1 << 20  # the largest budget tried when looking for a test's minimum
#: folders of the operating system, refused as data.root (the jobs write datasets and caches there)
_SYSTEM_FOLDERS = frozenset(map(Path, (
    "/", "/bin", "/boot", "/dev", "/etc", "/lib", "/lib32", "/lib64", "/libx32", "/proc", "/run", "/sbin", "/sys",
    "/usr", "/usr/bin", "/usr/include", "/usr/lib", "/usr/lib32", "/usr/lib64", "/usr/libexec", "/usr/local",
    "/usr/sbin", "/usr/share", "/usr/src", "/var", "/var/cache", "/var/lib", "/var/log", "/var/spool")))
#: system folders whose every subfolder is the system's too (unlike /usr/share/x or /var/tmp)
_SYSTEM_TREES = tuple(map(Path, ("/boot", "/dev", "/etc", "/proc", "/sys")))
_TIMM = ("timm:", "timm-")  # an architecture from timm's registry, as configs and the DAG's paths write it


class ConfigError(ValueError):
    """The config is well-formed but means something that cannot run; one problem per line."""

    def __init__(self, problems: list[str]):
        self.problems = [" ".join(p.splitlines()) for p in problems]  # one line each
        count = f"{len(self.problems)} problem{'s' if len(self.problems) != 1 else ''}"
        super().__init__(f"the config has {count}:\n" + "\n".join(f"  {p}" for p in self.problems))


class ConfigWarning(UserWarning):
    """Something the jobs can still handle, but the user should know before they start."""


def _fmt(value: Any) -> str:
    """A config value as the message shows it (strings quoted)."""
    return repr(value)


def _listing(items: Iterable[Any]) -> str:
    """``a, b, c`` (``none`` if empty)."""
    items = [str(i) for i in items]
    return ", ".join(items) if items else "none"


@functools.lru_cache(maxsize=None)
def min_samples(procedure: str, kappa: float, alpha: float) -> int | None:
    """The fewest samples after which ``procedure`` can certify at (κ, α): the test's own
    :attr:`~bench.certification.sequential.SequentialTest.min_certify`, or None if it exceeds 2**20 samples.

    Budgets grow by a quarter from ⌈ln α / ln(1−κ)⌉ (the paper's test's minimum; the others need
    a little more) until the test certifies within one; the thresholds at n samples do not depend
    on the budget, so the first budget that contains the minimum gives it exactly.
    """
    budget = max(16, n_min(kappa, alpha))
    while True:
        budget = min(budget, _SEARCH_CAP)
        found = make_test(procedure, kappa, alpha, budget).min_certify
        if found <= budget:
            return found
        if budget >= _SEARCH_CAP:
            return None
        budget = math.ceil(1.25 * budget)


def _can_write(path: Path) -> bool:
    """Whether ``path`` can be written, or created: its nearest existing ancestor is a writable
    directory."""
    path = path.absolute()
    while not path.exists() and path != path.parent:
        path = path.parent
    return path.is_dir() and os.access(path, os.W_OK | os.X_OK)


def _repeats(key: str, values: list, normal=lambda v: v) -> list[str]:
    """A problem if ``values`` repeats one (after ``normal``): runs and table rows would double."""
    seen, repeated = set(), []
    for v in values:
        n = normal(v)
        if n in seen and v not in repeated:
            repeated.append(v)
        seen.add(n)
    if not repeated:
        return []
    return [f"{key}: {_fmt(values)} repeats {_listing(map(_fmt, repeated))}; allowed: distinct values"]


# --- the checks, each returning its problems ------------------------------------------------------


def _check_plugins(config: dict) -> list[str]:
    """Every plugin loads, and the external models register (so that the methods both add exist
    for the checks after it: :func:`bench.workflow.extensions.load_extensions`)."""
    problems = []
    for i, spec in enumerate(config.get("plugins") or []):
        try:
            load_plugin(spec)
        except Exception as exc:  # a plugin may fail in any way: report it with the others
            problems.append(f"plugins[{i}]: {_fmt(spec)} could not be loaded ({type(exc).__name__}: {exc}); "
                            "allowed: an importable dotted module name or the path of an existing .py file")
    if not problems:  # then the external models and the vote methods, which may build on a plugin's
        try:
            load_extensions(config)
        except (ValueError, TypeError) as exc:  # each names its key (models: or vote:)
            text = str(exc)
            problems.append(text if text.startswith(("models", "vote:")) else f"models: {text}")
    return problems


def _run_methods(config: dict) -> tuple[list[str], list[str]]:
    """(problems, the run's methods that exist)."""
    chosen = config.get("methods", "all")
    if chosen == "all":
        return [], available_methods()
    problems, ok = _repeats("methods", list(chosen)), []
    for i, key in enumerate(chosen):
        try:
            get_method(key)
            ok.append(key)
        except ValueError as exc:  # "unknown method 'x'; known: ..."
            problems.append(f"methods[{i}]: {_fmt(key)} is not registered: {exc}")
    return problems, ok


def _known_hparams(cls) -> list[str]:
    """Every name :meth:`Method.resolve_hparams` accepts as an override for ``cls``."""
    return sorted({k for group in cls.defaults.values() for k in group})


def _is_number(value: Any) -> bool:
    """Whether a hyperparameter value is a number to the methods, which convert with float()."""
    if isinstance(value, bool):
        return False
    if isinstance(value, (int, float)):
        return True
    try:  # PyYAML reads 1e-3 as a string; the methods convert with float()
        float(value)
        return isinstance(value, str)
    except (TypeError, ValueError):
        return False


def _check_hparams(config: dict, infos: list, run: list[str]) -> list[str]:
    """Every override under ``hparams.<method>.<name>`` must resolve for every configured dataset
    and lie in the range the method declares for it (``Method.ranges``); so must every default
    of the run's methods that the config does not override, on every configured dataset.

    Overrides of a registered method that this run does not train are checked too but allowed: a
    smaller config cut from a larger one (``methods: [erm, ours]``) keeps the larger one's block.
    """
    problems = []
    registered = available_methods()
    for method, overrides in (config.get("hparams") or {}).items():
        if method not in METHODS:
            problems.append(f"hparams.{method}: {_fmt(overrides)} is for a method that is not registered; "
                            f"allowed: {_listing(registered)}")
            continue
        cls = METHODS[method]
        for name, value in (overrides or {}).items():
            unknown, wrong_type = [], None
            for info in infos:
                try:
                    cls.resolve_hparams(info, {name: value})
                except ValueError:
                    unknown.append(info.name)
                    continue
                default = cls.resolve_hparams(info).get(name)
                if wrong_type is None and _is_number(default) and not _is_number(value):
                    wrong_type = (default, info.name)
            if unknown:
                where = "" if len(unknown) == len(infos) else f" (on {_listing(unknown)})"
                problems.append(f"hparams.{method}.{name}: {_fmt(value)} is not a hyperparameter of method "
                                f"'{method}'{where}; allowed: {_listing(_known_hparams(cls))}")
            elif wrong_type is not None:
                problems.append(f"hparams.{method}.{name}: {_fmt(value)} is not a number (the default on "
                                f"{wrong_type[1]} is {wrong_type[0]!r}); allowed: a number")
            elif name in cls.ranges and (why := cls.ranges[name].problem(value)) is not None:
                problems.append(f"hparams.{method}.{name}: {_fmt(value)} {why}; allowed: {cls.ranges[name]}")
    return problems + _check_default_ranges(config, infos, run)


def _check_default_ranges(config: dict, infos: list, run: list[str]) -> list[str]:
    """The defaults that the config leaves in force lie in their ranges, on every configured
    dataset: :func:`bench.training.register_method` checks a method's own, but not an external
    model's or a plugin's subclass that changes ``defaults`` or ``ranges`` after registering."""
    overrides = config.get("hparams") or {}
    wrong: dict[tuple[str, str, str, str], list[str]] = {}  # (method, name, value, why) -> datasets
    for method in dict.fromkeys([*run, *overrides]):
        cls = METHODS.get(method)
        if cls is None:
            continue  # reported above
        for info in infos:
            defaults = cls.resolve_hparams(info)
            for name, why in cls.range_problems(defaults).items():
                if name not in (overrides.get(method) or {}):
                    wrong.setdefault((method, name, _fmt(defaults[name]), why), []).append(info.name)
    return [f"hparams.{method}.{name}: {value} (the default of method '{method}' on {_listing(datasets)}) {why}; "
            f"allowed: {METHODS[method].ranges[name]}" for (method, name, value, why), datasets in wrong.items()]


def _check_method_epochs(config: dict, run: list[str]) -> list[str]:
    """``train.method_epochs`` names methods of the run."""
    return [f"train.method_epochs.{m}: {_fmt(v)} is for a method that is not in this run; allowed: {_listing(run)}"
            for m, v in (config["train"].get("method_epochs") or {}).items() if m not in run]


def _check_ablation(config: dict, infos: list) -> list[str]:
    """Figure 2's method exists and its varied hyperparameter is one of its numeric ones."""
    ab = config.get("ablation")
    if not ab:
        return []
    method, hparam = ab["method"], ab["hparam"]
    if method not in METHODS:
        return [f"ablation.method: {_fmt(method)} is not a registered method; allowed: {_listing(available_methods())}"]
    cls = METHODS[method]
    problems = []
    for info in infos:
        defaults = cls.resolve_hparams(info)
        if hparam not in defaults:
            numeric = [k for k, v in defaults.items() if _is_number(v)]
            problems.append(f"ablation.hparam: {_fmt(hparam)} is not a hyperparameter of method '{method}' "
                            f"on {info.name}; allowed: {_listing(sorted(numeric))}")
            break
        if not _is_number(defaults[hparam]):
            numeric = [k for k, v in defaults.items() if _is_number(v)]
            problems.append(f"ablation.hparam: {_fmt(hparam)} of method '{method}' is not numeric (default "
                            f"{defaults[hparam]!r}), but ablation.values are numbers; allowed: "
                            f"{_listing(sorted(numeric))}")
            break
    if not problems and hparam in cls.ranges:  # each value trains a model: none may lie outside the range
        for i, value in enumerate(ab["values"]):
            why = cls.ranges[hparam].problem(value)
            if why is not None:
                problems.append(f"ablation.values[{i}]: {_fmt(value)} {why} for hyperparameter '{hparam}' of method "
                                f"'{method}'; allowed: {cls.ranges[hparam]}")
    problems += _repeats("ablation.values", list(ab["values"]), normal=float)
    return problems


def _timm_problem(key: str, arch: str) -> list[str]:
    """A problem if the ``timm:<name>`` architecture ``arch`` names no model of timm's registry,
    with timm's closest names (difflib), else none. timm is imported only when a config names it."""
    import timm

    name = arch[len(_TIMM[0]):]
    if timm.is_model(name):
        return []
    close = difflib.get_close_matches(name, timm.list_models(), n=5, cutoff=0.75)
    hint = f" (close: {_listing(f'timm:{c}' for c in close)})" if close else ""
    return [f"{key}: {_fmt(arch)} is not a model of timm's registry{hint}; "
            "allowed: timm:<name> for a name that timm.list_models() lists"]


def _user_arch_problem(key: str, arch: str, dataset: Any) -> list[str]:
    """A problem if the user architecture ``arch`` (``FILE.py:FUNCTION``, ``module:FUNCTION``)
    does not build an ``nn.Module`` for ``dataset`` whose forward gives one row of logits per
    image (no such file, module that does not import, no such function, not a module, a build or
    a forward that raises, logits of another shape), else none. Built as the jobs build it, by
    the builder :func:`bench.training.external.register` added to ``MODELS``."""
    import torch

    from bench.training.external import USER_FORMS, UserArchError, UserArchitecture, arch_name

    builder = MODELS.get(arch_name(arch))
    if not isinstance(builder, UserArchitecture) or builder.spec != arch:  # the models: block did not register it
        builder = UserArchitecture(arch)
    try:
        if dataset not in DATASETS:  # no shape to build it for (the schema names the dataset): whether it loads
            if builder.error is not None:
                raise builder.error
            return []
        info = dataset_info(dataset)
        with torch.random.fork_rng():  # the check draws no number of the process's generator
            net = builder(info.channels, info.image_size, info.num_classes)
    except UserArchError as error:
        return [f"{key}: {_fmt(arch)} {error.why}; allowed: {USER_FORMS}"]
    shape = "×".join(map(str, info.shape))
    try:  # one image through it, so that a network the dataset's images cannot go through fails here
        with torch.no_grad(), torch.random.fork_rng():
            out = net.eval()(torch.zeros(1, *info.shape))
    except Exception as error:  # the user's code: whatever it raises
        return [f"{key}: {_fmt(arch)} builds a network that cannot take {dataset}'s {shape} images "
                f"({type(error).__name__}: {error}); allowed: a network of {info.channels}×{shape} images to "
                f"{info.num_classes} logits"]
    if not isinstance(out, torch.Tensor) or tuple(out.shape) != (1, info.num_classes):
        got = f"shape {tuple(out.shape)}" if isinstance(out, torch.Tensor) else f"of type {type(out).__name__}"
        return [f"{key}: {_fmt(arch)} builds a network whose output for one {dataset} image is {got}, not "
                f"(1, {info.num_classes}); allowed: a network returning one row of {info.num_classes} logits "
                "per image"]
    return []


def _check_architectures(config: dict) -> list[str]:
    """Every architecture the config names exists: ``arch: timm:<name>`` and each ``models[i].arch``
    (a registered architecture, ``timm:<name>``, or the user's ``FILE.py:FUNCTION`` /
    ``module:FUNCTION`` that builds an ``nn.Module`` for the entry's dataset:
    :func:`_user_arch_problem`), so that a misspelt name stops the DAG instead of a train or
    import job."""
    from bench.training.external import UserArchitecture, is_user_arch

    problems = []
    arch = str(config.get("arch", "paper"))
    if arch.startswith(_TIMM):
        problems += _timm_problem("arch", arch)
    for i, entry in enumerate(config.get("models") or []):
        arch = str(entry.get("arch", ""))
        if arch.startswith(_TIMM):
            problems += _timm_problem(f"models[{i}].arch", arch)
        elif is_user_arch(arch):
            problems += _user_arch_problem(f"models[{i}].arch", arch, entry.get("dataset"))
        elif arch not in MODELS:
            # the registered ones, not the user architectures this process registered (their names are paths')
            known = [k for k, builder in MODELS.items() if not isinstance(builder, UserArchitecture)]
            close = difflib.get_close_matches(arch, known, n=3)
            hint = f" (close: {_listing(close)})" if close else ""
            problems.append(f"models[{i}].arch: {_fmt(arch)} is not a registered architecture{hint}; allowed: a "
                            f"registered architecture ({_listing(known)}), your own FILE.py:FUNCTION, or timm:<name>")
    return problems


def _radius_users(config: dict, run: list[str]) -> list[str]:
    """What takes the main vicinity's radius as its L∞ budget: the attacks and the sound bounds."""
    tables = set(config["tables"])
    declared = [METHODS[m] for m in run if m in METHODS]
    bounds = any(cls.native_certificate == "bounds" for cls in declared)
    users = [f"Table {t}" for t in (3, 9) if t in tables]
    if 11 in tables and 0 in (config["certify"].get("kappas") or []) and bounds:
        users.append("Table 11 at κ = 0 (IBP bounds)")
    from bench.tables import get_table  # local: bench.tables imports pandas (the Snakefile's parse)

    if any(cls.vote for cls in declared) and any(get_table(t).enabled(config) for t in ("table3_adaptive", "table9_adaptive")):
        users.append("the adaptive attacks")
    if config.get("native") and bounds:
        users.append("the native bounds")
    users += [what for key, what in (("masking", "the masking checks"), ("ablation", "the ablation's AutoAttack"))
              if config.get(key)]
    return users


def _check_vicinities(config: dict, infos: list, run: list[str]) -> list[str]:
    """Every vicinity spec parses, every certified transform has one, and the main vicinity is a
    ball wherever its radius is used."""
    problems = []
    vic = config["vicinities"]
    parsed = {}
    for group in ("all", "28x28", "32x32", *DATASETS):
        for name, spec in (vic.get(group) or {}).items():
            try:
                parsed[group, name] = parse_vicinity(spec)
            except ValueError as exc:
                problems.append(f"vicinities.{group}.{name}: {_fmt(spec)} does not parse ({exc}); "
                                f"allowed: {_VICINITY_FORMS}")
    groups = sorted({shape_group(info) for info in infos})
    for i, transform in enumerate(config["certify"].get("transforms") or []):
        for group in groups:
            if transform not in {**vic.get("all", {}), **vic.get(group, {})}:
                problems.append(f"certify.transforms[{i}]: {_fmt(transform)} is not a vicinity in vicinities.all; "
                                f"allowed: {_listing(vic.get('all', {}))}")
                break
    users = _radius_users(config, run)
    # the main vicinity each dataset uses: its own key's, else its shape group's (bench.runs.vicinities)
    used = dict.fromkeys(info.name if (info.name, "main") in parsed else shape_group(info) for info in infos)
    for group in used:
        main = parsed.get((group, "main"))
        if users and main is not None and not isinstance(main, (LinfBall, L2Ball)):
            problems.append(f"vicinities.{group}.main: {_fmt(main.spec)} has no radius, which {_listing(users)} "
                            f"take as their L∞ budget; allowed: linf:<eps> (or l2:<eps>)")
    return problems


def _certify_levels(config: dict) -> dict[tuple[float, float], dict[str, list[str]]]:
    """Every (κ, α) the configured outputs certify at: ``{(κ, α): {what: procedures}}``.

    Read from the table registry (:mod:`bench.tables`): the settings of every certification
    table whose certify jobs some enabled table reads (Table 1's for Table 4, the audit, the
    native certificates and the ablation too), and ``arch: sweep``'s validation (the first
    procedure). κ = 0 is certified by IBP bounds, not by a test.
    """
    from bench.runs import best_arch, vicinities
    from bench.tables import TABLES, CertificationTable, enabled_tables

    c = config["certify"]
    levels: dict[tuple[float, float], dict[str, list[str]]] = {}

    def use(kappa: float, alpha: float, what: str, procedures: list[str]) -> None:
        known = levels.setdefault((float(kappa), float(alpha)), {}).setdefault(what, [])
        known += [p for p in procedures if p not in known]

    def arch_of(dataset: str, method: str, seed: int) -> str:  # which jobs run does not depend on the arch
        return best_arch(method, dataset, config)

    readers: dict[str, list[str]] = {}
    for table in enabled_tables(config):
        try:
            paths = table.inputs(config, arch_of)
        except (KeyError, ValueError):  # an unknown method or vicinity: reported by its own check
            continue
        certified = {o.name for o in map(_output, paths) if o is not None and o.kind == "certify"}
        for key, cls in TABLES.items():
            if issubclass(cls, CertificationTable) and key in certified:
                readers.setdefault(key, []).append(table)
    for key, by in readers.items():
        table = TABLES[key]()
        others = [t.title.split(":")[0] for t in by if t.key != key]
        name = table.title.split(":")[0] + (f" for {_listing(others)}" if len(others) == len(by) else "")
        for dataset in config["datasets"]:
            try:
                settings = table.settings(config, vicinities(config, dataset))
            except (KeyError, ValueError):
                continue
            for setting in settings:
                use(setting["kappa"], setting["alpha"], name, [setting["procedure"]])
    if config.get("arch") == "sweep":  # the validation job: the first procedure only
        use(c["kappa"], c["alpha"], "arch: sweep's validation", list(c["procedures"])[:1])
    return levels


def _check_budget(config: dict) -> list[str]:
    """The budget must reach every test's minimum at every (κ, α) used."""
    budget = int(config["certify"]["budget"])
    problems = []
    for (kappa, alpha), uses in _certify_levels(config).items():
        for procedure in dict.fromkeys(p for procs in uses.values() for p in procs):
            what = _listing(w for w, procs in uses.items() if procedure in procs)
            try:
                needed = min_samples(procedure, kappa, alpha)
            except ValueError as exc:
                problems.append(f"certify.procedures: {_fmt(procedure)} cannot test at κ = {kappa:g}, "
                                f"α = {alpha:g} ({what}): {exc}")
                continue
            if needed is not None and needed <= budget:
                continue
            at_least = f"{needed}" if needed is not None else f"more than {_SEARCH_CAP}"
            problems.append(f"certify.budget: {budget} is below the {at_least} samples that the '{procedure}' "
                            f"test needs before it can certify at κ = {kappa:g}, α = {alpha:g} ({what}); "
                            f"allowed: budget >= {at_least}")
    return problems


def _check_native(config: dict, run: list[str]) -> list[str]:
    """Cohen et al.'s CERTIFY (for smoothing methods in the run) must be able to certify at all."""
    native = config.get("native")
    if not native or not any(getattr(METHODS.get(m), "native_certificate", None) == "smoothing" for m in run):
        return []
    s = native["smoothing"]
    alpha, n = float(s["alpha"]), int(s["n"])
    # CERTIFY abstains unless the Clopper-Pearson bound of n agreeing samples, α^(1/n), exceeds 1/2
    needed = max(1, math.floor(math.log(alpha) / math.log(0.5)) + 1)
    while alpha ** (1 / needed) <= 0.5:  # guard the float floor, both ways
        needed += 1
    while needed > 1 and alpha ** (1 / (needed - 1)) > 0.5:
        needed -= 1
    if n >= needed:
        return []
    return [f"native.smoothing.n: {n} is below the {needed} samples that CERTIFY needs to certify anything at "
            f"α = {alpha:g}; allowed: n >= {needed}"]


#: run names whose folders other things own: reports/bench (the benchmarks' CSVs), reports/demo
#: (``bench demo``), and the layout's own folder names (bench.paths)
RESERVED_RUNS = ("bench", "demo", "ablation", "benchmarks", "logs")


def _check_run(config: dict) -> list[str]:
    """The run name is one plain path component of its own. The schema's pattern is searched
    with Python's ``re``, whose ``$`` also matches before a final newline: checked whole here."""
    run = str(config["run"])
    if not re.fullmatch(r"[A-Za-z0-9][A-Za-z0-9_.-]*", run):
        return [f"run: {run!r}: a run name is letters, digits, '_', '.' and '-', starting with a letter or digit "
                "(it names the folders results/<run>/ and reports/<run>/)"]
    if run in RESERVED_RUNS:
        return [f"run: {run!r}: reserved (reports/{run}/ or results/<run>/{run}/ belongs to something else); "
                f"not one of {', '.join(RESERVED_RUNS)}"]
    return []


def _check_lists(config: dict) -> list[str]:
    """No list repeats a value (runs and rows would double); paper_reference names configured datasets."""
    c = config["certify"]
    problems = []
    for key, values in (("datasets", config["datasets"]), ("seeds", config["seeds"]), ("tables", config["tables"]),
                        ("certify.procedures", c["procedures"]), ("certify.kappas", c.get("kappas") or []),
                        ("certify.confidences", c.get("confidences") or []),
                        ("certify.transforms", c.get("transforms") or [])):
        problems += _repeats(key, list(values))
    if isinstance(config["attacks"]["names"], list):
        problems += _repeats("attacks.names", config["attacks"]["names"])
    if config.get("adaptive"):
        problems += _repeats("adaptive.attacks", config["adaptive"]["attacks"])
    if config.get("native"):
        problems += _repeats("native.bounds", config["native"]["bounds"])
    for name in (config.get("paper_reference") or {}):
        if name not in config["datasets"]:
            problems.append(f"paper_reference.{name}: {_fmt(config['paper_reference'][name])} is for a dataset "
                            f"that is not configured; allowed: {_listing(config['datasets'])}")
    return problems


def _system_folder(root: Path) -> Path | None:
    """The system folder that ``root`` is, or lies in (one of ``_SYSTEM_TREES``), resolved
    (relative to the working directory, links followed); None if it is none."""
    try:
        resolved = root.resolve()
    except (OSError, RuntimeError):  # a loop of links: the data checks below report what it is
        return None
    if resolved in _SYSTEM_FOLDERS or any(resolved.is_relative_to(tree) for tree in _SYSTEM_TREES):
        return resolved
    return None


def _check_data(config: dict) -> tuple[list[str], list[str]]:
    """(problems, warnings) about the datasets; see the module docstring for which is which."""
    root = Path(config["data"]["root"])
    system = _system_folder(root)
    if system is not None:  # alone: whether it can be written is beside the point
        where = "" if str(system) == str(root) else f" ({system})"
        return [f"data.root: {_fmt(str(root))} is a system folder{where}; allowed: a folder of your own, such "
                "as data or /tmp/data (the jobs download, stage and cache datasets under it)"], []
    if root.exists() and not root.is_dir():
        return [f"data.root: {_fmt(str(root))} is not a directory; "
                "allowed: a directory in torchvision's layout, or a path where one can be created"], []
    problems, notes = [], []
    writable = _can_write(root)
    for name in dict.fromkeys(config["datasets"]):
        if all((root / FOLDERS[name] / f).is_file() for f in FILES[name]):
            continue  # on disk where the jobs read it
        found, why = dataset_available(name, root)
        if not writable:
            how = f"{why}, and must be staged under data.root" if found else why
            problems.append(f"data.root: {_fmt(str(root))} cannot be written, so the jobs cannot get "
                            f"dataset '{name}' ({how}); allowed: a writable directory (downloads, staging "
                            "and the decoded cache go there)")
        elif not found:
            notes.append(f"datasets: {why}. Otherwise its first job downloads it through torchvision "
                         "(this needs network)")
    return problems, notes


def _check_tables(config: dict) -> list[str]:
    """Every table named in ``tables`` by key is registered (by this package or a plugin)."""
    from bench.tables import TABLES

    return [f"tables[{i}]: {_fmt(t)} is not a registered table; allowed: the paper's numbers 1, 2, 3, 4, 9, 10, "
            f"11, 12 or a key of {_listing(TABLES)}"
            for i, t in enumerate(config["tables"]) if isinstance(t, str) and t not in TABLES]


def check_config(config: dict) -> None:
    """Check what a schema-valid config means, before any job runs.

    Raises :class:`ConfigError` listing every problem found, one line each, naming the key (a
    dotted path, such as ``hparams.ours.n_sample``), its value and what is allowed. Emits a
    :class:`ConfigWarning` for each dataset the jobs will have to download.
    """
    problems = _check_run(config) + _check_plugins(config)
    method_problems, run = _run_methods(config)
    problems += method_problems
    problems += _check_architectures(config)
    infos = [dataset_info(d) for d in dict.fromkeys(config["datasets"])]
    problems += _check_hparams(config, infos, run)
    problems += _check_method_epochs(config, run)
    problems += _check_ablation(config, infos)
    problems += _check_vicinities(config, infos, run)
    problems += _check_budget(config)
    problems += _check_native(config, run)
    problems += _check_lists(config)
    problems += _check_tables(config)
    data_problems, notes = _check_data(config)
    problems += data_problems
    for note in notes:  # attributed to this line: Snakemake drops warnings attributed to a Snakefile
        warnings.warn(note, ConfigWarning)
    if problems:
        raise ConfigError(problems)


def _output(path: str):
    """The job output at ``path`` (:class:`bench.paths.Output`), or None for a file outside the layout."""
    try:
        return Output.parse(path)
    except ValueError:
        return None
