"""One SQL generator for both engines (DuckDB and Spark SQL).

The statements use the subset both dialects share (``CAST(... AS STRING)``, ``TRY_CAST``, ``concat_ws``,
``COALESCE``, ``CASE``, equi-joins); the only difference is how an identifier is quoted. The runners
register the tables the statements read:

=================  ==================================================================================
``mp_src<n>``      an input file as the engine reads it (CSV or Parquet; X12 and FHIR staged as CSV, or Parquet in a stage_dir)
``mp_facts_raw``   the optional facts table
``mp_lines_svc``   the lines with a flag per service fact (``svc_<fact>``) their facts-table row states
``mp_map_date``    ``(value, err_code, err_field, err_reason, vclass, iso)``: each distinct date
``mp_gf``          the governed lines with their facts-table row (fact columns as ``f_<fact>``)
``mp_map_<n>``     ``(value, err_code, err_field, err_reason, err_late, sig, c<i>..., iso<j>...)``: each distinct
                   combination of a group's columns (``classify.Plan.groups[n]``), ``value`` its key
``mp_results``     the engine's answer for each (key, conflict signature) that occurs
=================  ==================================================================================
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from functools import partial

from medpolicy.routing import LINES_OF_BUSINESS
from medpolicy.screening.classify import AGE_PREFIX, DX, TRUE_TEXTS, Group, KeyLayout, Plan
from medpolicy.screening.lob import sql_case
from medpolicy.screening.routes import Routes

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
    "rests_on_conflict",
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
    "line_of_business",
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

    def with_services(self, facts_key: str, services: Sequence[str]) -> str:
        """``mp_lines`` with a flag per service fact (``svc_<fact>``): 1 when the line's facts-table row
        states it true (the texts ``decide`` is given as true: ``classify.raw_fact``), else 0."""
        q = self.d.q
        trues = ", ".join(lit(t) for t in sorted(TRUE_TEXTS))
        flags = ", ".join(
            f"CASE WHEN LOWER(s.{q(f)}) IN ({trues}) THEN 1 ELSE 0 END AS {q('svc_' + f)}" for f in services
        )
        cols = ", ".join(f"{self._s(f)} AS {q(f)}" for f in services)
        return (
            f"SELECT l.*, {flags} FROM mp_lines l LEFT JOIN (SELECT {self._s(facts_key)} AS fact_key, {cols} "
            f"FROM mp_facts_raw) s ON s.fact_key = l.{q(facts_key)}"
        )

    def _in_scope(self, routes: Routes, flags: Sequence[str]) -> str:
        """A line some policy governs: a governed code, or a service fact stated true (NULL or false
        otherwise)."""
        inlist = ", ".join(lit(c) for c in routes.codes) or "NULL"
        return " OR ".join([f"procedure_code IN ({inlist})", *(f"{self.d.q('svc_' + f)} = 1" for f in flags)])

    def ungoverned(self, routes: Routes, flags: Sequence[str] = ()) -> str:
        """The lines no policy governs (a procedure code given)."""
        src = "mp_lines_svc" if flags else "mp_lines"
        return (
            f"SELECT * FROM {src} WHERE procedure_code IS NOT NULL "
            f"AND NOT COALESCE({self._in_scope(routes, flags)}, FALSE)"
        )

    def routed(self, routes: Routes, flags: Sequence[str] = ()) -> str:
        """The lines some policy governs, each with its ``route``: the policy that screens it, or
        ``!<n>`` (``routes.errors[n]``). ``flags``: the service facts the lines carry (``svc_<fact>``,
        ``with_services``); a line stating one true is routed as ``decide`` routes such a case."""
        q = self.d.q

        def by_lob(route_of: Callable[[str | None, str | None], str | None], other: bool) -> str:
            def by_code(lob: str | None) -> str:
                whens = " ".join(f"WHEN {lit(c)} THEN {lit(route_of(c, lob))}" for c in routes.codes)
                rest = f" ELSE {lit(route_of(None, lob))}" if other else ""
                return f"CASE procedure_code {whens}{rest} END" if whens else lit(route_of(None, lob))

            branches = [f"WHEN line_of_business IS NULL THEN {by_code(None)}"]
            branches += [
                f"WHEN line_of_business = {lit(lob)} THEN {by_code(lob)}" for lob in LINES_OF_BUSINESS
            ]
            return f"CASE {' '.join(branches)} ELSE {lit(routes.invalid)} END"

        route = by_lob(lambda c, lob: routes.by.get((c, lob)) if c else None, other=False)
        stated_sets = [s for s in routes.by_service if set(s[2]) <= set(flags)]
        if flags and stated_sets:
            whens = []
            for stated in dict.fromkeys(s[2] for s in stated_sets):
                cond = " AND ".join(f"{q('svc_' + f)} = {int(f in stated)}" for f in flags)
                expr = by_lob(partial(_service_route, routes, stated), other=True)
                whens.append(f"WHEN {cond} THEN {expr}")
            route = f"CASE {' '.join(whens)} ELSE {route} END"
        src = "mp_lines_svc" if flags else "mp_lines"
        return (
            f"SELECT * FROM (SELECT l.*, {route} AS route FROM {src} l "
            f"WHERE {self._in_scope(routes, flags)}) r WHERE route IS NOT NULL"
        )

    def routed_errors(self) -> str:
        """The lines no policy can screen, as screened rows in error."""
        return (
            "SELECT claim_id, line_number, member_id, procedure_code, "
            "TRY_CAST(date_of_service AS DATE) AS date_of_service, billed_amount, "
            "CAST(NULL AS STRING) AS policy_id, CAST(NULL AS STRING) AS policy_version, "
            "CAST(NULL AS STRING) AS outcome, CAST(NULL AS STRING) AS missing_facts, "
            "CAST(NULL AS STRING) AS deciding_criteria, CAST(NULL AS STRING) AS disposition, "
            "CAST(NULL AS STRING) AS carc, CAST(NULL AS STRING) AS rarc, "
            "CAST(NULL AS BOOLEAN) AS rests_on_conflict, CAST(NULL AS STRING) AS matched_key, "
            "e.code AS err_code, e.field AS err_field, e.reason AS err_reason, source, location, "
            "line_of_business FROM mp_routed r JOIN mp_route_errors e ON e.tag = r.route"
        )

    def facts(self, key: str, columns: Sequence[str]) -> str:
        cols = "".join(f", {self._s(c)} AS {self.d.q(c)}" for c in columns)
        return f"SELECT {self._s(key)} AS fact_key{cols} FROM mp_facts_raw"

    def gov_facts(self, facts_key: str | None, columns: Sequence[str]) -> str:
        """The governed lines with their facts-table row (``f_<fact>``; NULL without a facts table)."""
        q = self.d.q
        if facts_key is None:
            return "SELECT g.* FROM mp_gov g"
        cols = ", ".join(f"f.{q(c)} AS {q('f_' + c)}" for c in columns)
        return f"SELECT g.*{', ' if cols else ''}{cols} FROM mp_gov g LEFT JOIN mp_facts f ON f.fact_key = g.{q(facts_key)}"

    def _value(self, plan: Plan, column: str) -> str:
        """A group column's value in ``mp_gf`` (alias ``g``) joined to the maps before it."""
        q = self.d.q
        if column in ("procedure_code", DX):
            return f"g.{q(column)}"
        if column.startswith(AGE_PREFIX):
            # Whole years from the birth date to the date of service, birthdays counted on the day
            # (``measures.age_in_years``); -1 when the service precedes the birth.
            born = self._iso_of(plan, column.removeprefix(AGE_PREFIX))
            on = "dm.iso"
            years = (
                f"CAST(substr({on}, 1, 4) AS INT) - CAST(substr({born}, 1, 4) AS INT) - "
                f"CASE WHEN substr({on}, 6, 5) < substr({born}, 6, 5) THEN 1 ELSE 0 END"
            )
            return (
                f"(CASE WHEN {born} IS NULL OR {on} IS NULL THEN CAST(NULL AS STRING) "
                f"WHEN {on} < {born} THEN '-1' ELSE CAST({years} AS STRING) END)"
            )
        return f"g.{q('f_' + column)}"

    def _iso_of(self, plan: Plan, column: str) -> str:
        for grp in plan.groups:
            if column in grp.dated:
                return f"m{grp.n}.iso{grp.dated.index(column)}"
        raise KeyError(column)  # pragma: no cover - Plan puts every age source in a group

    def group_key(self, plan: Plan, group: Group) -> str:
        """One text value per distinct combination of the group's columns (NULLs and separators escaped,
        so that two combinations never share a key)."""
        values = [self._value(plan, c) for c in group.columns]
        if len(values) == 1:
            return values[0]
        esc = [
            f"COALESCE(replace({v}, chr(31), concat(chr(31), chr(30))), concat(chr(31), chr(29)))"
            for v in values
        ]
        sep = "concat(chr(31), chr(28))"
        parts: list[str] = []
        for e in esc:
            parts += [sep, e] if parts else [e]
        return f"concat({', '.join(parts)})"

    def _joins(self, plan: Plan, groups: Sequence[Group]) -> str:
        joins = ["LEFT JOIN mp_map_date dm ON dm.value = g.date_of_service"]
        for grp in groups:
            joins.append(f"LEFT JOIN mp_map_{grp.n} m{grp.n} ON m{grp.n}.value = {self.group_key(plan, grp)}")
        return " ".join(joins)

    def distinct_groups(
        self, plan: Plan, groups: Sequence[Group], before: Sequence[Group], *, dates: bool = False
    ) -> str:
        """``(tag, key, v0, v1, ...)``: the distinct combinations of each group's columns among the
        governed lines (``before``: the groups whose maps are loaded, for the age pseudo columns);
        ``dates``: the distinct dates of service too (tag ``date``)."""
        width = max([len(g.columns) for g in groups] + [1])
        pad = ", ".join(f"CAST(NULL AS STRING) AS v{j}" for j in range(width))
        parts = (
            [
                f"(SELECT DISTINCT 'date' AS tag, date_of_service AS value, {pad} FROM mp_gov "
                "WHERE date_of_service IS NOT NULL)"
            ]
            if dates
            else []
        )
        for grp in groups:
            vals = [f"{self._value(plan, c)} AS v{j}" for j, c in enumerate(grp.columns)]
            vals += [f"CAST(NULL AS STRING) AS v{j}" for j in range(len(grp.columns), width)]
            dated = any(c.startswith(AGE_PREFIX) for c in grp.columns)
            src = f"mp_gf g {self._joins(plan, before)}" if dated else "mp_gf g"
            parts.append(
                f"(SELECT DISTINCT {lit(str(grp.n))} AS tag, {self.group_key(plan, grp)} AS value, "
                f"{', '.join(vals)} FROM {src})"
            )
        return " UNION ALL ".join(parts)

    def keyed(self, plan: Plan) -> str:
        """Governed lines with their error (the first map whose combination ``decide`` rejects), version
        class, ISO date, the class of each engine fact, conflict signature and key number."""
        maps = [f"m{g.n}" for g in plan.groups]
        # field errors first, then the cross-checks parse_case makes once every field parses
        whens = ["dm.err_code IS NOT NULL THEN dm"]
        whens += [f"{a}.err_code IS NOT NULL AND {a}.err_late = 0 THEN {a}" for a in maps]
        whens += [f"{a}.err_code IS NOT NULL THEN {a}" for a in maps]
        err = {
            part: "CASE " + " ".join(f"WHEN {w}.{part}" for w in whens) + " ELSE CAST(NULL AS STRING) END"
            for part in ("err_code", "err_field", "err_reason")
        }
        owner = {i: g.n for g in plan.groups for i in g.engine}
        classes = [
            f"COALESCE(m{owner[i]}.c{i}, -1) AS c{i}" if i in owner else f"-1 AS c{i}"
            for i in range(len(plan.ks.facts))
        ]
        sigs = ", ".join(f"m{g.n}.sig" for g in plan.groups)
        sig = f"COALESCE(concat_ws(';', {sigs}), '')" if sigs else "''"
        inner = (
            "SELECT g.*, "
            + ", ".join(f"{v} AS {k}" for k, v in err.items())
            + f", COALESCE(dm.vclass, {plan.unknown_date_class}) AS vclass, dm.iso AS dos_iso, "
            + ", ".join(classes)
            + f", {sig} AS conflict_sig FROM mp_gf g "
            + self._joins(plan, plan.groups)
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
            "(r.rests_on_conflict = 1) AS rests_on_conflict, "
            "r.matched_key, k.err_code, k.err_field, k.err_reason, k.source, k.location, k.line_of_business "
            "FROM mp_keyed k LEFT JOIN mp_results r ON r.key_id = k.key_id "
            "AND r.conflict_sig = k.conflict_sig AND k.err_code IS NULL"
        )

    def output(
        self, table: str = "mp_screened", *, ungoverned: bool = False, ungoverned_policy: str | None = None
    ) -> str:
        """The written rows; with ``ungoverned`` the lines no policy governs too (``not_applicable``,
        ``pass``; their date as given; ``ungoverned_policy`` in ``policy_id``, NULL with several)."""
        sql = f"SELECT {', '.join(OUTPUT_COLUMNS)} FROM {table} WHERE err_code IS NULL"
        if not ungoverned:
            return sql
        return (
            f"{sql} UNION ALL SELECT claim_id, line_number, member_id, procedure_code, "
            "TRY_CAST(date_of_service AS DATE) AS date_of_service, billed_amount, "
            f"{lit(ungoverned_policy)} AS policy_id, CAST(NULL AS STRING) AS policy_version, "
            "'not_applicable' AS outcome, '' AS missing_facts, '' AS deciding_criteria, 'pass' AS disposition, "
            "CAST(NULL AS STRING) AS carc, CAST(NULL AS STRING) AS rarc, CAST(NULL AS BOOLEAN) AS rests_on_conflict, "
            "CAST(NULL AS STRING) AS matched_key "
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


def _service_route(routes: Routes, stated: tuple[str, ...], code: str | None, lob: str | None) -> str | None:
    return routes.by_service.get((code, lob, stated))


def key_expr(layout: KeyLayout) -> str:
    """The key number of a line from its ``vclass`` and ``c<i>`` columns."""
    branches = []
    for v, pairs in layout.strides.items():
        terms = [f"CAST({layout.offsets[v]} AS BIGINT)"] + [
            f"CAST(k.c{i} + 1 AS BIGINT) * {stride}" for i, stride in pairs
        ]
        branches.append(f"WHEN {v} THEN CAST({' + '.join(terms)} AS BIGINT)")
    return f"CASE k.vclass {' '.join(branches)} END"
