"""Batch claims screening: a policy over millions of claim lines, on DuckDB (default) or Spark SQL.

Modules: ``x12`` (streaming 837P/837I reader), ``fhir`` (EOB/Claim Bulk NDJSON), ``tabular`` (CSV and
Parquet column mappings, CMS RIF built in), ``classify`` (the engine's class of each distinct value and
its key → result table), ``sqlgen`` (one SQL generator for both engines), ``duckdb_runner`` and
``spark_runner``, ``dispositions`` (pass / pend / refer, CARC and RARC values), ``generator`` (realistic
IORT claim files in every format), ``inputs`` (each input registered, X12 and FHIR lines staged),
``routes`` (each line's policy, as ``decide`` routes), ``api`` (``screen`` and ``impact``) and ``spark_job`` (the
``spark-submit`` entry point). See docs/screening.md.
"""

from medpolicy.screening.api import ImpactResult, ScreeningError, Summary, impact, screen

__all__ = ["ImpactResult", "ScreeningError", "Summary", "impact", "screen"]
