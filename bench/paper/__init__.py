"""The paper's own tables (``bench/paper/tables/*.csv``) and the facts code checks against them.

Table 7, which method can train which architecture, is the compatibility the training jobs
enforce; Table 5 gives the parameter counts the paper states.
"""
from __future__ import annotations

import functools
from importlib import resources

import pandas as pd

__all__ = ["PAPER_TABLES", "paper_table", "compatible_architectures", "check_compatible"]

PAPER_TABLES = (1, 2, 3, 4, 5, 7, 9, 10, 11, 12)


@functools.cache
def _read(number: int) -> pd.DataFrame:
    if number not in PAPER_TABLES:
        raise ValueError(f"the paper has no transcribed Table {number}; known: {PAPER_TABLES}")
    with resources.files("bench").joinpath(f"paper/tables/table{number}.csv").open() as f:
        return pd.read_csv(f, na_values=["-"], keep_default_na=False)


def paper_table(number: int) -> pd.DataFrame:
    """Table ``number`` of the paper in long form (a copy; '-' cells are NaN)."""
    return _read(number).copy()


def compatible_architectures(method: str) -> list[str]:
    """The architectures ``method`` can train according to the paper's Table 7."""
    table = _read(7).set_index("method")
    if method not in table.index:
        raise ValueError(f"method '{method}' is not in the paper's Table 7; known: {', '.join(table.index)}")
    row = table.loc[method]
    return [arch for arch, ok in row.items() if ok == "yes"]


def any_architecture(allowed: list[str]) -> bool:
    """Whether a Table 7 entry allows an arbitrary network: every one of the paper's five."""
    return set(allowed) >= {"resnet18", "wrn8", "cifar_resnet110", "cnn7", "convnet"}


def check_compatible(method: str, arch: str, allowed: list[str] | None = None) -> None:
    """Refuse ``arch`` for ``method`` unless allowed (by default: Table 7), listing what is."""
    allowed = compatible_architectures(method) if allowed is None else allowed
    if arch.startswith(("timm:", "timm-")):
        if not any_architecture(allowed):
            raise ValueError(f"method '{method}' cannot train the timm model '{arch}': its Table 7 entry allows "
                             f"only {', '.join(allowed)}; a timm model is for the methods whose entry allows "
                             "every architecture (any network)")
        return
    if arch not in allowed:
        raise ValueError(
            f"method '{method}' cannot train architecture '{arch}' (Table 7); "
            f"it can train: {', '.join(allowed)}"
        )
