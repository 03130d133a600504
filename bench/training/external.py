"""External checkpoints: models trained elsewhere, evaluated by the DAG beside the trained methods.

A config's optional ``models:`` block lists them::

    models:
      - name: my_model              # how its rows are labelled (lower case, digits, _)
        dataset: fashion_mnist
        arch: convnet               # a bench.models name, timm:<name>, or your own FILE.py:FUNCTION
        weights: path/to/model.safetensors
        predict_as: erm             # the method whose prediction rule it uses (a vote for ours/rs); default erm
        claims: ours                # optional: the method it claims to be, shown beside its rows

Each entry becomes a method of its own name (:func:`register`), a subclass of ``predict_as``
marked ``external``, so that every evaluation job (certification, attacks, audit, native
certificates, masking checks) runs on it unchanged; the ``import_model`` rule replaces its
training (:func:`import_checkpoint`). Its rows carry ``external`` (the weights' file and what it
claims). Weights load with safetensors (never unpickled) into the named architecture, and a
checkpoint that does not fit it is refused with the missing, unexpected and mis-shaped tensors.

``arch`` is written three ways; :func:`arch_name` maps each to the name the DAG's paths and
:data:`bench.models.MODELS` use: a registered name as it is, ``timm:<name>`` as ``timm-<name>``,
and the user's own architecture, ``path/to/net.py:FUNCTION`` or ``dotted.module:FUNCTION`` (the
form of ``python -m bench certify --model``; a relative path is read from the folder Snakemake
runs in), as ``user_<file stem or module>_<function>`` (lower case, every character but a-z, 0-9
and _ as _: a path component that the DAG's ``arch`` wildcard accepts). FUNCTION is an
``nn.Module`` (each model gets a deep copy) or a callable returning one, called with no arguments,
or with ``(in_channels, image_size, num_classes)`` when its signature has exactly three positional
parameters. :func:`register` adds it to ``MODELS`` under that name (:class:`UserArchitecture`), so
that :func:`bench.models.create_model` puts the dataset's ``Normalize`` in front of it as it does
for every architecture, and every process that registers the config's models (the Snakefile, the
import job, each evaluation job) builds it. The external model's method class then takes the
user's module as its ``__module__``: the ``method`` code stamp of the jobs that use the method
(:func:`bench.workflow.plan.code_version`) covers the user's file, as it covers a plugin's.
"""
from __future__ import annotations

import copy
import inspect
import re
from pathlib import Path
from types import ModuleType
from typing import Any

import torch

from bench.paths import model_file

__all__ = ["UserArchError", "UserArchitecture", "arch_name", "check_fit", "external_models", "import_checkpoint",
           "is_user_arch", "register"]

#: the prefix of a user architecture's name in the DAG's paths and in bench.models.MODELS
USER_PREFIX = "user_"
#: what a user architecture may be, as errors end
USER_FORMS = ("FILE.py:FUNCTION or dotted.module:FUNCTION, where FUNCTION is an nn.Module or a callable returning "
              "one (of no arguments, or of in_channels, image_size, num_classes)")


def is_user_arch(arch: str) -> bool:
    """Whether ``arch`` names the user's code (``FILE.py:FUNCTION``, ``module:FUNCTION``): it has
    a colon and is not ``timm:<name>``."""
    arch = str(arch)
    return ":" in arch and not arch.startswith("timm:")


def arch_name(arch: str) -> str:
    """The name the DAG's paths and :data:`bench.models.MODELS` give the architecture a config
    writes as ``arch``: ``timm:<name>`` -> ``timm-<name>``; ``path/net.py:build`` ->
    ``user_net_build``, ``pkg.nets:Net`` -> ``user_pkg_nets_net``; any other unchanged (so a
    name already in that form maps to itself)."""
    arch = str(arch)
    if arch.startswith("timm:"):
        return "timm-" + arch[len("timm:"):]  # a path component: no colon
    if not is_user_arch(arch):
        return arch
    where, _, function = arch.rpartition(":")
    source = Path(where).stem if where.endswith(".py") else where
    # the DAG's arch wildcard is [a-z0-9_]+ (or timm-...): no '/', ':', '-', '.' or capitals
    return USER_PREFIX + re.sub(r"[^a-z0-9_]", "_", f"{source}_{function}".lower())


class UserArchError(ValueError):
    """A user architecture that cannot be built: ``why`` says what is wrong, after the spec."""

    def __init__(self, spec: str, why: str):
        self.spec, self.why = spec, why
        super().__init__(f"architecture {spec!r} {why}; allowed: {USER_FORMS}")


def _load(spec: str) -> tuple[ModuleType, Any]:
    """The module of the user architecture ``spec`` (imported with :func:`bench.training.load_plugin`)
    and the object its FUNCTION names; :class:`UserArchError` if there is no such file, the
    module does not import, or it has no such name."""
    from bench.training.plugins import load_plugin

    where, _, function = spec.rpartition(":")
    if not where or not function.isidentifier():
        raise UserArchError(spec, "is not of the form FILE.py:FUNCTION or module:FUNCTION")
    if where.endswith(".py") and not Path(where).is_file():
        relative = "" if Path(where).is_absolute() else f" (relative to {Path.cwd()})"
        raise UserArchError(spec, f"names no file: {where} does not exist{relative}")
    try:
        module = load_plugin(where)
    except Exception as error:  # the user's code: whatever it raises, the one line says what
        raise UserArchError(spec, f"does not import: importing {where} raised {type(error).__name__}: {error}"
                            ) from error
    if not hasattr(module, function):
        raise UserArchError(spec, f"names no function: {where} has no {function!r}")
    return module, getattr(module, function)


def _takes_shape(builder: Any) -> bool:
    """Whether ``builder``'s signature has exactly three positional parameters (in_channels,
    image_size, num_classes); a callable without an inspectable signature is called bare."""
    try:
        parameters = inspect.signature(builder).parameters.values()
    except (TypeError, ValueError):
        return False
    kinds = (inspect.Parameter.POSITIONAL_ONLY, inspect.Parameter.POSITIONAL_OR_KEYWORD)
    return sum(p.kind in kinds for p in parameters) == 3


class UserArchitecture:
    """The builder :func:`register` adds to :data:`bench.models.MODELS` for a user architecture:
    called as every builder, ``(in_channels, image_size, num_classes)``, it returns the user's
    network (without the ``Normalize`` layer, which :func:`bench.models.create_model` adds).

    The user's module is imported when the builder is made; one that fails to import is kept as
    its error, raised when the builder is called (the config check reports it first, as one line,
    :func:`bench.workflow.config.check_config`), so that registering never stops a process."""

    def __init__(self, spec: str):
        self.spec = spec
        self.source = _source(spec)
        self.module: ModuleType | None = None
        self._object: Any = None
        self.error: UserArchError | None = None  #: why the spec does not load, if it does not
        try:
            self.module, self._object = _load(spec)
        except UserArchError as error:
            self.error = error

    def __call__(self, in_channels: int, image_size: int, num_classes: int) -> torch.nn.Module:
        """A new network for images of ``in_channels``×``image_size``² and ``num_classes`` classes;
        :class:`UserArchError` when the spec does not load or does not give an ``nn.Module``."""
        if self.error is not None:
            raise self.error
        function = self.spec.rpartition(":")[2]
        obj = self._object
        if isinstance(obj, torch.nn.Module):
            return copy.deepcopy(obj)  # each model its own parameters, as a builder's
        if not callable(obj):
            raise UserArchError(self.spec, f"is not an nn.Module: {function} is of type {type(obj).__name__}")
        args = (in_channels, image_size, num_classes) if _takes_shape(obj) else ()
        try:
            net = obj(*args)
        except Exception as error:
            called = f"{function}({', '.join(map(str, args))})"
            raise UserArchError(self.spec, f"does not build: {called} raised {type(error).__name__}: {error}"
                                ) from error
        if not isinstance(net, torch.nn.Module):
            raise UserArchError(self.spec, f"is not an nn.Module: {function}() returned a value of type "
                                           f"{type(net).__name__}")
        return net


def _source(spec: str) -> tuple[str, ...]:
    """What identifies a user architecture's code within a process: its file (resolved) with its
    modification time and the function, or the module and function as written."""
    where, _, function = spec.rpartition(":")
    path = Path(where)
    if where.endswith(".py") and path.is_file():
        return str(path.resolve()), str(path.stat().st_mtime_ns), function
    return where, function


def _register_architectures(entries: dict[str, dict[str, Any]]) -> dict[str, UserArchitecture]:
    """Add each user architecture of ``entries`` to :data:`bench.models.MODELS` under
    :func:`arch_name` (a builder of the same code already there is kept: the user's module is
    imported once per process); by external model name, the builders. Two specs that give one
    name, or a name that a registered architecture has, are refused (``ValueError``)."""
    from bench.models import MODELS

    builders: dict[str, UserArchitecture] = {}
    by_name: dict[str, str] = {}
    for i, (model, entry) in enumerate(entries.items()):
        spec = str(entry["arch"])
        if not is_user_arch(spec):
            continue
        name = arch_name(spec)
        if name in by_name and _source(by_name[name]) != _source(spec):
            raise ValueError(f"models[{i}].arch: {spec!r} gives the architecture name '{name}', as {by_name[name]!r} "
                             "of another entry does; allowed: files or functions whose names differ in more than "
                             "case, '-' or '.'")
        by_name[name] = spec
        old = MODELS.get(name)
        if old is not None and not isinstance(old, UserArchitecture):
            raise ValueError(f"models[{i}].arch: {spec!r} gives the architecture name '{name}', which a registered "
                             "architecture has; allowed: another file or function name")
        if isinstance(old, UserArchitecture) and old.source == _source(spec) and old.module is not None:
            builders[model] = old
            continue
        builders[model] = MODELS.add(name, UserArchitecture(spec), replace=True)
    return builders


def external_models(config: dict) -> dict[str, dict[str, Any]]:
    """The config's ``models:`` entries by name (empty without the block)."""
    return {m["name"]: m for m in config.get("models") or []}


def register(config: dict) -> None:
    """Register each external model as a method (idempotent): its ``predict_as`` method's class
    with the model's name as key and its architecture (:func:`arch_name`) as the only one it has;
    a user architecture is first added to :data:`bench.models.MODELS` under that name."""
    from bench.training import METHODS, get_method

    entries = external_models(config)
    builders = _register_architectures(entries)
    for name, m in entries.items():
        if name in METHODS and getattr(METHODS[name], "external", None) is None:
            raise ValueError(f"models: '{name}' is the name of a registered method; give the external model "
                             "another name")
        base = get_method(m.get("predict_as", "erm"))
        arch = arch_name(m["arch"])
        module = builders[name].module if name in builders else None
        # a user architecture's module as the class's: the method code stamp then covers its file
        where = {"__module__": module.__name__} if module is not None else {}
        METHODS.add(name, type(f"External_{name}", (base,), {
            **where, "key": name, "name": f"{name} (external)", "architectures": (arch,),
            "citation": f"external checkpoint {m['weights']}" + (f", claims {m['claims']}" if m.get("claims") else ""),
            "external": {"weights": str(m["weights"]), "claims": m.get("claims"), "predict_as": base.key},
        }), replace=True)


def _state_dict(path: Path) -> dict[str, torch.Tensor]:
    from safetensors.torch import load_file

    if not path.exists():
        raise FileNotFoundError(f"external checkpoint {path} does not exist")
    return load_file(str(path))


def check_fit(model: torch.nn.Module, tensors: dict[str, torch.Tensor], what: str) -> None:
    """Refuse ``tensors`` that do not fit ``model``: every missing, unexpected and mis-shaped key."""
    expected = model.state_dict()
    missing = sorted(set(expected) - set(tensors))
    unexpected = sorted(set(tensors) - set(expected))
    shapes = [f"{k}: checkpoint {tuple(tensors[k].shape)}, architecture {tuple(expected[k].shape)}"
              for k in sorted(set(expected) & set(tensors)) if tensors[k].shape != expected[k].shape]
    if missing or unexpected or shapes:
        parts = [f"missing keys: {', '.join(missing)}" if missing else "",
                 f"unexpected keys: {', '.join(unexpected)}" if unexpected else "",
                 f"mismatched shapes: {'; '.join(shapes)}" if shapes else ""]
        raise ValueError(f"{what} does not fit: " + " | ".join(p for p in parts if p))


def import_checkpoint(entry: dict, out_dir: str | Path, hparams: dict, vicinity: str,
                      provenance: dict | None = None) -> dict:
    """Write ``model.safetensors``, ``model.json`` and an empty ``log.csv`` into ``out_dir`` from
    the external checkpoint ``entry``, as a finished training run would, after checking that its
    tensors fit the named architecture (``arch`` as the config writes it or as :func:`arch_name`
    gives it; a user architecture given as the config writes it is registered here). A checkpoint
    of the bare network (without the leading :class:`bench.models.Normalize` layer's
    ``0.mean``/``0.std``) gets the dataset's statistics."""
    from safetensors.torch import save_file

    from bench.data import dataset_info
    from bench.io import atomic_path, write_json
    from bench.models import create_model
    from bench.models.checkpoint import sha256

    out = Path(out_dir)
    info = dataset_info(entry["dataset"])
    arch = arch_name(entry["arch"])
    if is_user_arch(entry["arch"]):  # an entry as the config writes it, not yet registered by this process
        _register_architectures({entry["name"]: entry})
    model = create_model(arch, info)
    tensors = _state_dict(Path(entry["weights"]))
    normalize = {k: v for k, v in model.state_dict().items() if k.startswith("0.")}
    if not {"0.mean", "0.std"} <= set(tensors):  # the bare network: its keys under the Sequential's "1."
        tensors = {**normalize, **{f"1.{k}": v for k, v in tensors.items()}}
    check_fit(model, tensors, f"external checkpoint {entry['weights']} for architecture '{entry['arch']}'")
    model.load_state_dict(tensors)
    out.mkdir(parents=True, exist_ok=True)
    weights = model_file(out, "weights")
    state = {k: v.detach().cpu().contiguous() for k, v in model.state_dict().items()}
    atomic_path(weights, lambda tmp: save_file(state, str(tmp)))
    model_file(out, "log").write_text("epoch,loss,train_accuracy,val_accuracy,seconds\n")  # no training: no rows
    result = {
        "spec": {"dataset": entry["dataset"], "method": entry["name"], "arch": arch, "seed": 0},
        "hparams": hparams, "vicinity": vicinity,
        "method": {"key": entry["name"], "name": f"{entry['name']} (external)", "external": True,
                   "predict_as": entry.get("predict_as", "erm"), "claims": entry.get("claims")},
        "source": {"weights": str(entry["weights"]), "sha256": sha256(Path(entry["weights"]))},
        "epochs": 0, "weights_sha256": sha256(weights), "torch": torch.__version__,
        **({"provenance": provenance} if provenance is not None else {}),
    }
    write_json(result, model_file(out, "model"))
    return result

