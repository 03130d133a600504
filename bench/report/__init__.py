"""What people read: the self-contained HTML report (:mod:`~bench.report.html`), its figures
(:mod:`~bench.report.figures`) and the recipes' table with sources (:mod:`~bench.report.recipes`).
It reads only the aggregated tables (:mod:`bench.tables`)."""
