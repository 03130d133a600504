"""The DAG's jobs: what each Snakemake rule runs (``scripts/<kind>.py`` calls ``bench.jobs.<kind>.run``).

One module per kind (:mod:`bench.workflow.job_kinds` declares each), so that a job's code stamp
(:func:`bench.workflow.plan.code_version`) covers the code it runs and nothing else. Every job reads its
settings from the rule's ``params`` (:func:`bench.workflow.plan.job_settings`), never from the config,
does one thing, and writes small tidy files with a provenance block; no job reads another job's
internals, only its declared outputs. Each module's ``run(smk)`` is its rule's adapter: it hands
the job's files, settings, code stamps and :class:`~bench.jobs.common.Context` as real arguments
to the module's function (``attack_model``, ``certify_model``, ``audit_model``,
``native_certificates``), which the grouped jobs (``attacks.group``, ``certify.group``) call
directly for each part:

- :mod:`~bench.jobs.train`: one model (``model.json``, ``model.safetensors``, ``log.csv``);
- :mod:`~bench.jobs.external`: the same files from an external checkpoint (config ``models:``);
- :mod:`~bench.jobs.vote`: the same files for a vote method (config ``vote:``), its method's model;
- :mod:`~bench.jobs.certify`: the certification settings of one table for one model
  (``<table>.json``: one row per setting; ``<table>_inputs.csv``: one row per input and setting);
- :mod:`~bench.jobs.attack`: one attack (Table 9, AutoAttack, adaptive ``Vote*``, a masking check
  or a transfer) on one model (``attacks/<attack>.json``, with the per-input outcome);
- :mod:`~bench.jobs.audit`: a fresh-sample audit of Table 1's certificates (``audit.json``);
- :mod:`~bench.jobs.native`: the method's own certificate, Cohen's CERTIFY or sound bounds;
- :mod:`~bench.jobs.validation`: validation certified robust accuracy, for ``arch: sweep``.

Aggregation into the tables lives in :mod:`bench.tables`, the report in :mod:`bench.report.html`.
"""
