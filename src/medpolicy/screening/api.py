"""``screen`` and ``impact``: the Python API the CLI and the Spark job call.

A run: read the inputs (``inputs``: X12 and FHIR through the streaming readers, staged as a local CSV or
as Parquet in a ``stage_dir`` a cluster's executors can read; CSV and Parquet by the engine itself
through a column mapping), route each line some policy governs (its procedure code, or the service its
facts state) as ``decide`` routes its case (``routes``: line of business, the plan's default), and for each
policy that lines go to: classify each distinct combination of interacting columns with the engine
(``classify.Plan``), number each line's key, ask the engine for the result of each key that occurs,
join; then write. Every run ends by checking that
nothing was lost: lines read = lines written + lines not governed + lines in error.
"""

from __future__ import annotations

import datetime as dt
import tempfile
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import orjson

from medpolicy.errors import MedpolicyError
from medpolicy.policy import Policy, PolicySet, load_policies, load_policy
from medpolicy.screening.classify import Plan
from medpolicy.screening.inputs import Inputs, Runner, coverage_first
from medpolicy.screening.records import Progress
from medpolicy.screening.routes import routes_for
from medpolicy.screening.sqlgen import SqlGen, lit
from medpolicy.screening.tabular import MappingError, csv_header

__all__ = ["ImpactResult", "Runner", "ScreeningError", "Summary", "impact", "screen"]

FORMATS = ("parquet", "csv", "jsonl")


class ScreeningError(ValueError):
    """A run that cannot start (an unknown policy, version, mapping or facts table)."""


@dataclass
class Summary:
    """What a run did. ``outcomes``: outcome -> (lines, billed amount)."""

    policy_id: str
    engine: str
    lines_read: int = 0
    governed: int = 0
    not_governed: int = 0
    written: int = 0
    in_error: int = 0
    outcomes: dict[str, tuple[int, float]] = field(default_factory=dict)
    dispositions: dict[str, int] = field(default_factory=dict)
    errors: list[dict[str, Any]] = field(default_factory=list)
    seconds: float = 0.0
    output: str | None = None
    errors_output: str | None = None

    @property
    def balanced(self) -> bool:
        return self.lines_read == self.written + self.not_governed + self.in_error

    def to_dict(self) -> dict[str, Any]:
        d = {k: v for k, v in self.__dict__.items() if k != "errors"}
        d["outcomes"] = {k: {"lines": n, "billed_amount": b} for k, (n, b) in self.outcomes.items()}
        d["error_count"] = len(self.errors)
        return d


@dataclass
class ImpactResult:
    """``transitions``: (from outcome, to outcome, lines, billed amount)."""

    from_label: str
    to_label: str
    transitions: list[tuple[str, str, int, float]]
    changed: int
    summaries: tuple[Summary, Summary]
    output: str | None = None


def _runner(engine: str, spark: Any = None) -> Runner:
    if engine == "duckdb":
        from medpolicy.screening.duckdb_runner import DuckDBRunner

        return DuckDBRunner()
    if engine == "spark":
        from medpolicy.screening.spark_runner import SparkRunner

        return SparkRunner(spark)
    raise ScreeningError(f"unknown engine {engine!r}: duckdb or spark")


def _policy(policies: PolicySet | Policy | None, policy_id: str | None) -> Policy:
    if isinstance(policies, Policy):
        return policies
    ps = policies or load_policies()
    if policy_id is not None:
        return ps.get(policy_id)
    if len(ps) == 1:
        return next(iter(ps))
    # Several policies: the claim formats read here carry no line of business, so a line is routed as
    # `decide` routes a case without one (the plan's default, `policies/plan.yaml`). That must name
    # exactly one policy for the codes the policies govern; otherwise the user names one.
    routed: set[str] = set()
    for candidate in ps:
        for code in candidate.governs.codes:
            try:
                chosen = ps.for_order([code])
            except MedpolicyError:
                chosen = None
            if chosen is not None:
                routed.add(chosen.id)
    if len(routed) != 1:
        raise ScreeningError(
            f"{len(ps)} policies are loaded and the plan's default routing names "
            f"{len(routed)} of them for claims without a line of business: name one with --policy"
        )
    return ps.get(routed.pop())


_CONSTRAINTS = "spark.sql.constraintPropagation.enabled"


def _no_constraint_propagation(run: Runner) -> Callable[[], None]:
    """Spark: turn constraint propagation off for the run (restored after). A union of checkpointed
    tables made from one source (each policy's lines, when lines are routed to several) otherwise
    fails in Spark's optimizer (``key not found`` in ``Union.rewriteConstraints``); screening's joins
    gain nothing from the inferred filters."""
    conf = getattr(getattr(run, "spark", None), "conf", None)
    if run.name != "spark" or conf is None:
        return lambda: None
    before = conf.get(_CONSTRAINTS, None)
    conf.set(_CONSTRAINTS, "false")

    def restore() -> None:
        if before is None:
            conf.unset(_CONSTRAINTS)
        else:
            conf.set(_CONSTRAINTS, before)

    return restore


def _single(policies: PolicySet | Policy | None, policy_id: str | None) -> tuple[Policy | None, PolicySet]:
    """The one policy that screens every line (given, named, or the only one loaded), or None: each
    line is routed as ``decide`` routes its case."""
    if isinstance(policies, Policy):
        return policies, PolicySet({policies.id: policies})
    ps = policies or load_policies()
    if policy_id is not None:
        return ps.get(policy_id), ps
    if len(ps) == 1:
        return next(iter(ps)), ps
    return None, ps


def _facts_table(runner: Runner, path: Path | None) -> tuple[str | None, list[str]]:
    """Register the facts table (``mp_facts_raw``): its key column (claim_id or member_id) and columns.
    One row per key: a facts row is a line's own."""
    if path is None:
        return None, []
    if path.suffix.lower() == ".parquet":
        runner.register_parquet("mp_facts_raw", path)
    else:
        _, delim = csv_header(path)
        runner.register_csv("mp_facts_raw", path, delim)
    cols = runner.columns("mp_facts_raw")
    key = "claim_id" if "claim_id" in cols else "member_id" if "member_id" in cols else None
    if key is None:
        raise ScreeningError(f"facts table {path.name}: no claim_id or member_id column")
    gen = SqlGen(runner.dialect)
    dup = runner.query(f"SELECT COUNT(*) - COUNT(DISTINCT fact_key) FROM ({gen.facts(key, [])}) f")[0][0]
    if dup:
        raise ScreeningError(f"facts table {path.name}: {dup} rows repeat a {key} (one row per {key})")
    return key, cols


def _facts(runner: Runner, key: str | None, cols: Sequence[str], policy: Policy) -> list[str]:
    """The policy's fact columns of the registered facts table (``mp_facts``: one row per key)."""
    if key is None:
        return []
    facts = [c for c in cols if c in policy.fact_index and c not in ("procedure_codes", "date_of_service")]
    runner.create("mp_facts", SqlGen(runner.dialect).facts(key, facts))
    return facts


def _screen_table(
    runner: Runner, plan: Plan, facts_key: str | None, table: str, *, materialize: bool = False
) -> None:
    """Classify, key, look up and join: ``table`` holds every governed line with its result or error."""
    gen = SqlGen(runner.dialect)
    runner.create("mp_gf", gen.gov_facts(facts_key, plan.fact_columns), materialize=False)
    # Every group's distinct combinations, and the dates, in one statement (one job on Spark); the
    # groups holding an age computed from a birth date and the date of service come after.
    first = [g for g in plan.groups if not g.ages]
    later = [g for g in plan.groups if g.ages]
    combos: dict[str, list[tuple[Any, ...]]] = {str(g.n): [] for g in plan.groups}
    combos["date"] = []
    for tag, *combo in runner.query(gen.distinct_groups(plan, first, [], dates=True)):
        combos[tag].append(tuple(combo))
    dates = [c[0] for c in combos["date"]]
    runner.load(
        "mp_map_date",
        [
            ("value", "STRING"),
            ("err_code", "STRING"),
            ("err_field", "STRING"),
            ("err_reason", "STRING"),
            ("vclass", "INT"),
            ("iso", "STRING"),
        ],
        plan.classify_dates(dates),
    )
    for batch in (first, later):
        if batch is later and later:
            for tag, *combo in runner.query(gen.distinct_groups(plan, later, first)):
                combos[tag].append(tuple(combo))
        for grp in batch:
            values = combos[str(grp.n)]
            schema = [
                ("value", "STRING"),
                ("err_code", "STRING"),
                ("err_field", "STRING"),
                ("err_reason", "STRING"),
                ("err_late", "INT"),
                ("sig", "STRING"),
            ]
            schema += [(c, "INT") for c in grp.class_columns] + [(c, "STRING") for c in grp.iso_columns]
            width = len(grp.columns)
            runner.load(f"mp_map_{grp.n}", schema, plan.classify(grp, [c[: width + 1] for c in values]))
    runner.create("mp_keyed", gen.keyed(plan))
    keys = runner.query("SELECT DISTINCT key_id, conflict_sig FROM mp_keyed WHERE err_code IS NULL")
    runner.load(
        "mp_results",
        [
            ("key_id", "BIGINT"),
            ("conflict_sig", "STRING"),
            ("matched_key", "STRING"),
            ("outcome", "STRING"),
            ("policy_version", "STRING"),
            ("missing_facts", "STRING"),
            ("deciding_criteria", "STRING"),
            ("disposition", "STRING"),
            ("carc", "STRING"),
            ("rarc", "STRING"),
            ("carc_nodx", "STRING"),
            ("rarc_nodx", "STRING"),
            ("rests_on_conflict", "INT"),
        ],
        plan.result_rows((int(k), str(s)) for k, s in keys),
    )
    # A view where it can be (the join with the key results is a broadcast hash lookup over the
    # materialized mp_keyed, cheaper to redo for the write, the summary and the errors than to store;
    # Spark, 10M lines: checkpointing it cost 10 s); kept when the caller needs it (several policies).
    runner.create(table, gen.screened(plan.policy.id), materialize=materialize)


def _summarize(runner: Runner, s: Summary, table: str, inputs: Inputs, total: int) -> None:
    gen = SqlGen(runner.dialect)
    reader_errs = sum(e.lines for e in inputs.errors)
    s.lines_read = total + reader_errs
    s.governed = runner.query("SELECT COUNT(*) FROM mp_routed")[0][0]
    s.not_governed = total - s.governed
    for outcome, disposition, n, billed in runner.query(gen.summary(table)):
        lines, amount = s.outcomes.get(outcome, (0, 0.0))
        s.outcomes[outcome] = (lines + int(n), amount + float(billed or 0))
        s.dispositions[disposition] = s.dispositions.get(disposition, 0) + int(n)
    s.written = sum(n for n, _ in s.outcomes.values())
    line_errors = runner.query(gen.errors(table))
    s.in_error = len(line_errors) + reader_errs
    s.errors = [e.to_dict() for e in inputs.errors] + [
        {
            k: v
            for k, v in zip(
                ("source", "location", "claim_id", "line_number", "code", "field", "reason"), r, strict=True
            )
            if v is not None
        }
        for r in line_errors
    ]


def _write_errors(s: Summary, path: Path) -> None:
    with open(path, "wb") as fh:
        for e in s.errors:
            fh.write(orjson.dumps(e) + b"\n")
    s.errors_output = str(path)


def errors_path_for(output: Path) -> Path:
    name = output.name
    for ext in (".parquet", ".csv", ".jsonl", ".json"):
        if name.endswith(ext):
            name = name[: -len(ext)]
    return output.with_name(name + ".errors.jsonl")


def screen(
    inputs: Sequence[Path | str],
    output: Path | str | None = None,
    *,
    fmt: str = "parquet",
    engine: str = "duckdb",
    policies: PolicySet | Policy | None = None,
    policy_id: str | None = None,
    as_of: dt.date | None = None,
    version: str | None = None,
    facts: Path | str | None = None,
    mapping: str | None = None,
    spark: Any = None,
    runner: Runner | None = None,
    errors_output: Path | str | None = None,
    keep_table: str | None = None,
    keep_ungoverned: bool = False,
    stage_dir: str | Path | None = None,
    progress: Callable[[str], None] | None = None,
    on_bytes: Progress | None = None,
) -> Summary:
    """Screen claim files under a policy; write the governed lines to ``output`` (``fmt``) and what could
    not be screened to ``errors_output`` (JSON lines; default: beside the output). ``as_of`` applies the
    version in force on that date to every line (default: each line's date of service chooses);
    ``version`` names the version outright; ``keep_ungoverned`` writes the lines the policy does not
    govern too (outcome ``not_applicable``; still counted as not governed). ``stage_dir``: where the lines
    read from X12 and FHIR are staged, as Parquet, for the engine to read (a path or URI on storage every
    Spark executor can read; removed after the run); default: a CSV in a local temporary folder, which
    only an engine on this machine can read. ``progress`` is told each
    stage (reading claims, screening, writing) and ``on_bytes`` the bytes of the inputs read as they are
    (X12 and FHIR as the readers go; CSV and Parquet once the engine has scanned them): the CLI's progress
    bar. Raises ``ScreeningError`` when the run cannot start."""
    single, ps = _single(policies, policy_id)
    if version is not None and single is None:
        raise ScreeningError("a version names one policy's: name the policy with --policy")
    if fmt not in FORMATS:
        raise ScreeningError(f"unknown format {fmt!r}: {', '.join(FORMATS)}")
    routes = routes_for(ps, single)
    versions: dict[str, str | None] = {}
    for pol in routes.policies:
        versions[pol.id] = version
        if as_of is not None and version is None:
            v = pol.version_for(as_of)
            if v is None:
                raise ScreeningError(f"no version of {pol.id} was in force on {as_of.isoformat()}")
            versions[pol.id] = v.id
    own = runner is None
    run = runner or _runner(engine, spark)
    note = progress or (lambda _m: None)
    start = time.perf_counter()
    s = Summary(",".join(p.id for p in routes.policies) or (single.id if single else ""), run.name)
    restore = _no_constraint_propagation(run)
    with tempfile.TemporaryDirectory(prefix="medpolicy-stage-") as tmp:
        ins = Inputs(run, Path(tmp), on_bytes)
        try:
            note("reading claims")
            for p in coverage_first(inputs):
                try:
                    ins.add(Path(p), mapping)
                except MappingError as e:
                    raise ScreeningError(str(e)) from None
            ins.finish(str(stage_dir) if stage_dir is not None else None)
            note("screening")
            gen = SqlGen(run.dialect)
            if on_bytes is not None and ins.engine_bytes:
                on_bytes(ins.engine_bytes)
            total = ins.staged_lines + sum(run.query(f"SELECT COUNT(*) FROM {v}")[0][0] for v in ins.views)
            table = keep_table or "mp_screened"
            facts_key, facts_cols = _facts_table(run, Path(facts) if facts else None)
            # The service facts the facts table states (a policy scoping by the service given, as
            # ``governs_service``): a line stating one true is in that policy's scope whatever its code.
            flags = [f for f in routes.services if f in facts_cols] if facts_key else []
            if facts_key and flags:
                run.create("mp_lines_svc", gen.with_services(facts_key, flags), materialize=False)
            # Each line's policy (routed as decide routes its case), then each policy's lines screened.
            run.create("mp_routed", gen.routed(routes, flags))
            run.load(
                "mp_route_errors",
                [("tag", "STRING"), ("code", "STRING"), ("field", "STRING"), ("reason", "STRING")],
                [(f"!{n}", e.code, e.field, e.reason) for n, e in enumerate(routes.errors)],
            )
            used = {str(r[0]) for r in run.query("SELECT DISTINCT route FROM mp_routed")}
            screened = [pol for pol in routes.policies if pol.id in used]
            if single is None:
                s.policy_id = ",".join(pol.id for pol in screened) or s.policy_id
            parts = []
            for k, pol in enumerate(screened):
                fact_cols = _facts(run, facts_key, facts_cols, pol)
                try:
                    plan = Plan(pol, fact_cols, force_version=versions[pol.id])
                except KeyError:
                    raise ScreeningError(f"{pol.id} has no version {versions[pol.id]!r}") from None
                run.create(
                    "mp_gov", f"SELECT * FROM mp_routed WHERE route = {lit(pol.id)}", materialize=False
                )
                part = f"mp_screened_{k}"
                # one policy: a view on DuckDB (written straight from the join); several: each kept
                _screen_table(run, plan, facts_key, part, materialize=len(screened) > 1)
                parts.append(part)
            run.create(
                table,
                " UNION ALL ".join([f"SELECT * FROM {t}" for t in parts] + [gen.routed_errors()]),
                materialize=table != "mp_screened",
            )
            note("writing")
            if output is not None:
                out = Path(output)
                if keep_ungoverned:
                    run.create("mp_ungoverned", gen.ungoverned(routes, flags), materialize=False)
                run.write(
                    gen.output(
                        table,
                        ungoverned=keep_ungoverned,
                        ungoverned_policy=single.id if single else None,
                    ),
                    out,
                    fmt,
                )
                s.output = str(out)
            _summarize(run, s, table, ins, int(total))
            if output is not None or errors_output is not None:
                _write_errors(
                    s, Path(errors_output) if errors_output else errors_path_for(Path(output or ""))
                )
        finally:
            ins.close()
            restore()
            if ins.staged_uri is not None:
                run.remove(ins.staged_uri)
            if own:
                run.close()
    s.seconds = time.perf_counter() - start
    if not s.balanced:  # pragma: no cover - an internal invariant; a failure is a bug to report
        raise AssertionError(
            f"lines read {s.lines_read} != written {s.written} + not governed {s.not_governed} + in error {s.in_error}"
        )
    return s


def _side(label: str, policies: PolicySet | Policy | None, policy_id: str | None) -> tuple[Policy, str, str]:
    """``(policy, version id, label)`` for ``--from``/``--to``: a version of the loaded policy, or a folder
    holding a (proposed) policy, whose latest version then applies."""
    p = Path(label)
    if (p / "policy.yaml").is_file():
        pol = load_policy(p)
        return pol, pol.versions[-1].id, f"{pol.id} {pol.versions[-1].id} ({p})"
    pol = _policy(policies, policy_id)
    if label not in {v.id for v in pol.versions}:
        known = ", ".join(v.id for v in pol.versions)
        raise ScreeningError(f"{label!r} is neither a policy folder nor a version of {pol.id} ({known})")
    return pol, label, f"{pol.id} {label}"


def impact(
    inputs: Sequence[Path | str],
    from_: str,
    to: str,
    output: Path | str | None = None,
    *,
    fmt: str = "parquet",
    engine: str = "duckdb",
    policies: PolicySet | Policy | None = None,
    policy_id: str | None = None,
    facts: Path | str | None = None,
    mapping: str | None = None,
    spark: Any = None,
    stage_dir: str | Path | None = None,
    progress: Callable[[str], None] | None = None,
    on_bytes: Progress | None = None,
) -> ImpactResult:
    """The same lines under two policy versions (or a folder with a proposed revision): the transition
    table and the lines that change (written to ``output``). The inputs are read once per side:
    ``progress`` and ``on_bytes`` as for ``screen`` (twice the inputs' bytes in all)."""
    (pa, va, la), (pb, vb, lb) = _side(from_, policies, policy_id), _side(to, policies, policy_id)
    run = _runner(engine, spark)
    try:
        sa, sb = (
            screen(
                inputs,
                None,
                engine=engine,
                policies=pol,
                version=ver,
                facts=facts,
                mapping=mapping,
                runner=run,
                keep_table=table,
                stage_dir=stage_dir,
                progress=progress,
                on_bytes=on_bytes,
            )
            for pol, ver, table in ((pa, va, "mp_side_a"), (pb, vb, "mp_side_b"))
        )
        gen = SqlGen(run.dialect)
        rows = run.query(gen.transitions("mp_side_a", "mp_side_b"))
        transitions = sorted((str(a), str(b), int(n), float(m or 0)) for a, b, n, m in rows)
        changed = run.query(f"SELECT COUNT(*) FROM ({gen.changed('mp_side_a', 'mp_side_b')}) c")[0][0]
        if output is not None:
            run.write(gen.changed("mp_side_a", "mp_side_b"), Path(output), fmt)
    finally:
        run.close()
    return ImpactResult(la, lb, transitions, int(changed), (sa, sb), str(output) if output else None)
