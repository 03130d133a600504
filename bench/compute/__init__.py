"""Where and how a network runs: the device (:mod:`~bench.compute.device`), the numeric
precision and memory format (:mod:`~bench.compute.precision`) and the memory budget that sizes
every chunk of forwards (:mod:`~bench.compute.memory`)."""
