"""One SQL generator for both engines (DuckDB and Spark SQL).

The statements use the subset both dialects share (``CAST(... AS STRING)``, ``TRY_CAST``, ``concat_ws``,
``COALESCE``, ``CASE``, equi-joins); the only difference is how an identifier is quoted. The runners
register the tables the statements read:

=================  ==================================================================================
``mp_src<n>``      an input file as the engine reads it (CSV or Parquet; X12 and FHIR are staged as CSV)
``mp_facts_raw``   the optional facts table
``mp_map_date``    ``(value, err_code, err_field, err_reason, vclass, iso)``: each distinct date
``mp_map_<n>``     ``(value, err_code, err_field, err_reason, g<i>/d<i>...)``: each distinct value of a
                   classified column (``classify.Plan.columns[n]``)
``mp_results``     the engine's answer for each key that occurs
=================  ==================================================================================
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from medpolicy.screening.classify import DX, KeyLayout, Plan
from medpolicy.screening.lob import sql_case

__all__ = ["OUTPUT_COLUMNS", "Dialect", "SqlGen"]

#: The columns of a screening result, in order.
OUTPUT_COLUMNS = (
    "claim_id",
    "line_number",
    "member_id",
    "procedure_code",
    "date_of_service",
    "billed_amount",
    "policy_id",
    "policy_version",
    "outcome",
    "missing_facts",
    "deciding_criteria",
    "disposition",
    "carc",
    "rarc",
    "matched_key",
)
ERROR_COLUMNS = ("source", "location", "claim_id", "line_number", "code", "field", "reason")
#: The canonical line every input becomes.
LINE_FIELDS = (
    "claim_id",
    "line_number",
    "member_id",
    "procedure_code",
    "diagnosis_codes",
    "date_of_service",
    "billed_amount",
)


@dataclass(frozen=True, slots=True)
class Dialect:
    name: str
    quote: str

    def q(self, ident: str) -> str:
        return f"{self.quote}{ident.replace(self.quote, self.quote * 2)}{self.quote}"


DUCKDB = Dialect("duckdb", '"')
SPARK = Dialect("spark", "`")


def lit(value: str | None) -> str:
    """A SQL string literal."""
    return "NULL" if value is None else "'" + value.replace("'", "''") + "'"


@dataclass(frozen=True, slots=True)
class SourceColumns:
    """Which columns of an input hold each canonical field (``claim_id``... ``billed_amount``; several
    for diagnoses and modifiers), an optional ``location`` column (staged X12 and FHIR), and the line of
    business: a column (a line of business or an 837 claim filing indicator code, ``lob.sql_case``) or
    one value for every line."""

    claim_id: str
    line_number: str
    member_id: str | None
    procedure_code: str
    diagnosis_codes: tuple[str, ...]
    date_of_service: str | None
    billed_amount: str | None
    location: str | None = None
    line_of_business: str | None = None
    line_of_business_value: str | None = None

    def names(self) -> list[str]:
        out = [self.claim_id, self.line_number, self.procedure_code, *self.diagnosis_codes]
        out += [
            c
            for c in (
                self.member_id,
                self.date_of_service,
                self.billed_amount,
                self.location,
                self.line_of_business,
            )
            if c
        ]
        return out


class SqlGen:
    def __init__(self, dialect: Dialect) -> None:
        self.d = dialect

    def _s(self, col: str | None) -> str:
        """A column as trimmed text, empty as NULL."""
        if col is None:
            return "CAST(NULL AS STRING)"
        return f"NULLIF(TRIM(CAST({self.d.q(col)} AS STRING)), '')"

    def source(self, view: str, cols: SourceColumns, source_name: str) -> str:
        """A source's lines in the canonical shape."""
        s = self._s
        dx = (
            f"NULLIF(concat_ws('|', {', '.join(s(c) for c in cols.diagnosis_codes)}), '')"
            if cols.diagnosis_codes
            else "CAST(NULL AS STRING)"
        )
        lob = (
            sql_case(s(cols.line_of_business))
            if cols.line_of_business
            else lit(cols.line_of_business_value)
            if cols.line_of_business_value
            else "CAST(NULL AS STRING)"
        )
        return (
            f"SELECT {s(cols.claim_id)} AS claim_id, TRY_CAST({s(cols.line_number)} AS BIGINT) AS line_number, "
            f"{s(cols.member_id)} AS member_id, UPPER({s(cols.procedure_code)}) AS procedure_code, "
            f"{dx} AS diagnosis_codes, {s(cols.date_of_service)} AS date_of_service, "
            f"TRY_CAST({s(cols.billed_amount)} AS DOUBLE) AS billed_amount, {lit(source_name)} AS source, "
            f"{s(cols.location)} AS location, {lob} AS line_of_business FROM {view}"
        )

    def lines(self, sources: Sequence[str]) -> str:
        return " UNION ALL ".join(f"({q})" for q in sources)

    def governed(self, codes: Sequence[str], *, governed: bool = True) -> str:
        inlist = ", ".join(lit(c) for c in sorted(codes))
        neg = "" if governed else "NOT "
        return (
            f"SELECT * FROM mp_lines WHERE procedure_code IS NOT NULL AND {neg}procedure_code IN ({inlist})"
        )

    def facts(self, key: str, columns: Sequence[str]) -> str:
        cols = ", ".join(f"{self._s(c)} AS {self.d.q(c)}" for c in columns)
        return f"SELECT {self._s(key)} AS fact_key, {cols} FROM mp_facts_raw"

    def distinct(self, table: str, column: str) -> str:
        return f"SELECT DISTINCT {self.d.q(column)} FROM {table} WHERE {self.d.q(column)} IS NOT NULL"

    def distinct_all(self, wanted: Sequence[tuple[str, str, str]]) -> str:
        """``(tag, value)`` for the distinct non-null values of several ``(tag, table, column)``."""
        q = self.d.q
        return " UNION ALL ".join(
            f"(SELECT DISTINCT {lit(tag)} AS tag, CAST({q(col)} AS STRING) AS value FROM {table} "
            f"WHERE {q(col)} IS NOT NULL)"
            for tag, table, col in wanted
        )

    def keyed(self, plan: Plan, *, facts_key: str | None) -> str:
        """Governed lines with their error (the first column whose value ``decide`` rejects), version
        class, ISO date, the class of each engine fact, and the key number."""
        q = self.d.q
        joins = ["LEFT JOIN mp_map_date dm ON dm.value = g.date_of_service"]
        aliases = ["dm"]
        given: dict[int, str] = {}
        derived: dict[int, list[str]] = {}
        for n, col in enumerate(plan.columns):
            alias = f"m{n}"
            if col.column in ("procedure_code", DX):
                src = f"g.{q(col.column)}"
            elif facts_key is None:
                continue
            else:
                src = f"f.{q(col.column)}"
            joins.append(f"LEFT JOIN mp_map_{n} {alias} ON {alias}.value = {src}")
            aliases.append(alias)
            for i in col.given:
                given[i] = f"{alias}.g{i}"
            for i in col.derived:
                derived.setdefault(i, []).append(f"{alias}.d{i}")
        if facts_key is not None:
            joins.insert(0, f"LEFT JOIN mp_facts f ON f.fact_key = g.{q(facts_key)}")
        err = {
            part: "CASE "
            + " ".join(f"WHEN {a}.err_code IS NOT NULL THEN {a}.{part}" for a in aliases)
            + " ELSE CAST(NULL AS STRING) END"
            for part in ("err_code", "err_field", "err_reason")
        }
        classes = []
        for i in range(len(plan.ks.facts)):
            parts = [p for p in (given.get(i), _agreed(derived.get(i), plan.ks.classify(i, None))) if p] + [
                "-1"
            ]
            classes.append(f"COALESCE({', '.join(parts)}) AS c{i}")
        inner = (
            "SELECT g.*, "
            + ", ".join(f"{v} AS {k}" for k, v in err.items())
            + f", COALESCE(dm.vclass, {plan.unknown_date_class}) AS vclass, dm.iso AS dos_iso, "
            + ", ".join(classes)
            + " FROM mp_gov g "
            + " ".join(joins)
        )
        return f"SELECT k.*, {key_expr(plan.layout)} AS key_id FROM ({inner}) k"

    def screened(self, policy_id: str) -> str:
        return (
            "SELECT k.claim_id, k.line_number, k.member_id, k.procedure_code, "
            "CAST(k.dos_iso AS DATE) AS date_of_service, k.billed_amount, "
            f"{lit(policy_id)} AS policy_id, r.policy_version, r.outcome, r.missing_facts, "
            "r.deciding_criteria, r.disposition, "
            "CASE WHEN k.diagnosis_codes IS NULL THEN r.carc_nodx ELSE r.carc END AS carc, "
            "CASE WHEN k.diagnosis_codes IS NULL THEN r.rarc_nodx ELSE r.rarc END AS rarc, "
            "r.matched_key, k.err_code, k.err_field, k.err_reason, k.source, k.location "
            "FROM mp_keyed k LEFT JOIN mp_results r ON r.key_id = k.key_id AND k.err_code IS NULL"
        )

    def output(self, table: str = "mp_screened", *, ungoverned_policy: str | None = None) -> str:
        """The written rows; with ``ungoverned_policy`` the lines the policy does not govern too
        (``not_applicable``, ``pass``; their date as given)."""
        sql = f"SELECT {', '.join(OUTPUT_COLUMNS)} FROM {table} WHERE err_code IS NULL"
        if ungoverned_policy is None:
            return sql
        return (
            f"{sql} UNION ALL SELECT claim_id, line_number, member_id, procedure_code, "
            "TRY_CAST(date_of_service AS DATE) AS date_of_service, billed_amount, "
            f"{lit(ungoverned_policy)} AS policy_id, CAST(NULL AS STRING) AS policy_version, "
            "'not_applicable' AS outcome, '' AS missing_facts, '' AS deciding_criteria, 'pass' AS disposition, "
            "CAST(NULL AS STRING) AS carc, CAST(NULL AS STRING) AS rarc, CAST(NULL AS STRING) AS matched_key "
            "FROM mp_ungoverned"
        )

    def errors(self, table: str = "mp_screened") -> str:
        return (
            "SELECT source, location, claim_id, line_number, err_code AS code, err_field AS field, "
            f"err_reason AS reason FROM {table} WHERE err_code IS NOT NULL"
        )

    def summary(self, table: str = "mp_screened") -> str:
        return (
            f"SELECT outcome, disposition, COUNT(*) AS lines, SUM(billed_amount) AS billed FROM {table} "
            "WHERE err_code IS NULL GROUP BY outcome, disposition"
        )

    def transitions(self, a: str, b: str) -> str:
        """From outcome → to outcome, with line counts and billed amounts (a line governed under one
        side only is ``not_governed`` on the other)."""
        return (
            "SELECT COALESCE(a.outcome, 'not_governed') AS from_outcome, "
            "COALESCE(b.outcome, 'not_governed') AS to_outcome, COUNT(*) AS lines, "
            "SUM(COALESCE(a.billed_amount, b.billed_amount)) AS billed_amount "
            f"FROM (SELECT * FROM {a} WHERE err_code IS NULL) a "
            f"FULL OUTER JOIN (SELECT * FROM {b} WHERE err_code IS NULL) b "
            "ON a.claim_id = b.claim_id AND a.line_number = b.line_number "
            "GROUP BY COALESCE(a.outcome, 'not_governed'), COALESCE(b.outcome, 'not_governed')"
        )

    def changed(self, a: str, b: str) -> str:
        """The lines whose outcome, missing facts or disposition differ between the two sides."""
        side = ("policy_version", "outcome", "missing_facts", "disposition", "carc", "rarc", "matched_key")
        cols = (
            ", ".join(f"a.{c} AS from_{c}" for c in side) + ", " + ", ".join(f"b.{c} AS to_{c}" for c in side)
        )
        ident = ("claim_id", "line_number", "member_id", "procedure_code", "date_of_service", "billed_amount")
        idc = ", ".join(f"COALESCE(a.{c}, b.{c}) AS {c}" for c in ident)
        return (
            f"SELECT {idc}, {cols} "
            f"FROM (SELECT * FROM {a} WHERE err_code IS NULL) a "
            f"FULL OUTER JOIN (SELECT * FROM {b} WHERE err_code IS NULL) b "
            "ON a.claim_id = b.claim_id AND a.line_number = b.line_number "
            "WHERE a.outcome IS NULL OR b.outcome IS NULL OR a.outcome <> b.outcome "
            "OR COALESCE(a.missing_facts, '') <> COALESCE(b.missing_facts, '') "
            "OR COALESCE(a.disposition, '') <> COALESCE(b.disposition, '')"
        )


def key_expr(layout: KeyLayout) -> str:
    """The key number of a line from its ``vclass`` and ``c<i>`` columns."""
    branches = []
    for v, pairs in layout.strides.items():
        terms = [str(layout.offsets[v])] + [f"(k.c{i} + 1) * {stride}" for i, stride in pairs]
        branches.append(f"WHEN {v} THEN CAST({' + '.join(terms)} AS BIGINT)")
    return f"CASE k.vclass {' '.join(branches)} END"


def _agreed(sources: list[str] | None, unknown: int) -> str | None:
    """One derived class from several sources: a source that says nothing (`unknown` or NULL) defers
    to the others; two that disagree leave the fact unknown (as `parse_case` does with a conflict
    note)."""
    if not sources:
        return None
    if len(sources) == 1:
        return sources[0]
    # a source from the facts table is NULL where the line has no facts row: it says nothing either
    combined = f"COALESCE({sources[0]}, {unknown})"
    for other in (f"COALESCE({s}, {unknown})" for s in sources[1:]):
        combined = (
            f"(CASE WHEN {combined} = {unknown} THEN {other} WHEN {other} = {unknown} THEN {combined} "
            f"WHEN {combined} = {other} THEN {combined} ELSE {unknown} END)"
        )
    return combined
