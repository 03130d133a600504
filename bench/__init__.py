"""cpr-bench: the engine of a benchmark for certified probabilistic robustness.

Packages by concept, in the order data flows (``docs/layout.md`` draws it): :mod:`bench.data`
(datasets as tensors) → :mod:`bench.models` (architectures, checkpoints) and
:mod:`bench.compute` (device, precision, memory) → :mod:`bench.certification` (vicinities, the
sequential tests, Algorithm 2) → :mod:`bench.training` (methods and the loop) →
:mod:`bench.evaluation` (attacks, audit, native certificates) → :mod:`bench.runs` (the models a
config asks for) → :mod:`bench.tables` (aggregation) → :mod:`bench.workflow` (the DAG) →
:mod:`bench.jobs` (what a rule runs) → :mod:`bench.report`; :mod:`bench.api` and
:mod:`bench.cli` on top. Below them all, the foundations, which import nothing of ``bench`` but each other:
:mod:`bench.io`, :mod:`bench.paths`, :mod:`bench.registry`, :mod:`bench.stats`, and
:mod:`bench.paper` (the paper's tables and claims).
"""
from bench import _moved

__version__ = "0.1.0"

_moved.install()
