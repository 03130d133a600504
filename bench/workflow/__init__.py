"""The DAG: the config's meaning checked at build (:mod:`~bench.workflow.config`), the kinds of
job (:mod:`~bench.workflow.job_kinds`), what each job is set to and stamped with
(:mod:`~bench.workflow.plan`, :mod:`~bench.workflow.provenance`), what it costs
(:mod:`~bench.workflow.passes`, :mod:`~bench.workflow.estimate`), and a run's safety: corrupt
results moved aside (:mod:`~bench.workflow.integrity`) and the lock's owner
(:mod:`~bench.workflow.run_owner`)."""
