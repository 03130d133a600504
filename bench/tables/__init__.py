"""The benchmark's tables, one registered class each (:mod:`bench.tables.base`).

Importing this package registers every table module in it; the DAG, the aggregation rule and
the report loop over :data:`TABLES`.
"""
from bench.tables import attacks, certification, checks, claims, cost, native, seeds, selection  # noqa: F401 (registers)
from bench.tables.base import TABLES, CertificationTable, Table, enabled_tables, get_table, register_table

__all__ = ["CertificationTable", "TABLES", "Table", "enabled_tables", "get_table", "register_table"]
