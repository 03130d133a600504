"""Certification, the paper's Algorithm 2: vicinities B(x) (:mod:`~bench.certification.vicinity`),
what the tests count (:mod:`~bench.certification.streams`), the sequential tests
(:mod:`~bench.certification.sequential`), the batched engine (:mod:`~bench.certification.engine`),
Table 8's metrics (:mod:`~bench.certification.metrics`) and the simulation of the procedures on
known rates (:mod:`~bench.certification.simulation`)."""
