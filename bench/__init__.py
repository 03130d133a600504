"""cpr-bench: the engine of a benchmark for certified probabilistic robustness.

Modules, one concept each: :mod:`bench.data` (datasets as tensors), :mod:`bench.models`
(architectures), :mod:`bench.vicinity` (samplers of B(x)), :mod:`bench.sequential` (the
sequential tests), :mod:`bench.streams` (the classifier and each input's stream of samples),
:mod:`bench.certify` (Algorithm 2, batched), :mod:`bench.simulation`
(false-certification study), :mod:`bench.lirpa` (auto_LiRPA bounds), :mod:`bench.train`
(training loop), :mod:`bench.paper` (the paper's tables).
"""
__version__ = "0.1.0"
