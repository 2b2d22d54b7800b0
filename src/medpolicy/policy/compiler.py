"""The compiler: a validated policy file (`medpolicy.policy.schema`) to the frozen objects of
`medpolicy.policy.model`, with every check on the way (verbatim citations, code lists, facts and their
derivations, criteria and their operators, versions, notes), each problem located by line.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from medpolicy.codes import PCS_CODE_RE, icd10cm, normalize_icd10, normalize_procedure
from medpolicy.errors import PolicyLoadError
from medpolicy.language import AllOf, AnyOf, Atom, Criterion, Not
from medpolicy.policy.model import (
    CodeList,
    Derivation,
    FactSpec,
    Policy,
    PolicyNote,
    RationaleSection,
    Rule,
    Version,
    fold,
)
from medpolicy.policy.schema import _Fact, _PolicyFile, _Problems
from medpolicy.staging import AJCC8_T, T_CATEGORIES, t_family

# ----------------------------------------------------------------------------------------------------
# The criteria's operators, by fact type

_ATOM_OPS: dict[str, tuple[str, ...]] = {
    "in": ("enum",),
    "equals": ("enum",),
    "is": ("boolean",),
    "any_in": ("codes",),
    "t_category": ("staging",),
    "at_most": ("number",),
    "at_least": ("number",),
    "less_than": ("number",),
    "more_than": ("number",),
}
_META = {"id", "title", "cite"}


def _known_unit(unit: str) -> bool:
    from medpolicy.measures import known_unit

    return known_unit(unit)


def _units() -> tuple[str, ...]:
    from medpolicy.measures import UNITS

    return UNITS


class _Compiler:
    def __init__(self, folder: Path, raw: _PolicyFile, pr: _Problems) -> None:
        self.folder = folder
        self.raw = raw
        self.pr = pr
        self.source_text = ""
        self.folded_source = ""
        self.params = {k: v.default for k, v in raw.parameters.items()}
        self.code_lists: dict[str, CodeList] = {}
        self.fact_types: dict[str, _Fact] = raw.facts
        self.criterion_params: dict[str, str] = {}

    def compile(self) -> Policy:
        raw, pr = self.raw, self.pr
        src = self.folder / raw.source.file
        try:
            self.source_text = src.read_text(encoding="utf-8")
        except OSError as e:
            pr.add(("source", "file"), f"source document {raw.source.file!r} cannot be read: {e}")
        self.folded_source = fold(self.source_text)
        self._code_lists()
        facts = self._facts()
        governs = self._governs()
        gs = raw.governs_service
        if gs is not None and (gs not in raw.facts or raw.facts[gs].type != "boolean"):
            pr.add(("governs_service",), f"governs_service names {gs!r}, which is not a boolean fact")
        rationale = self._rationale()
        for f in facts:
            for value, sec in f.rationale.items():
                if sec not in rationale:
                    pr.add(("facts", f.name, "values", value), f"rationale section {sec!r} is not defined")
            for value, chapter in f.ajcc.items():
                if chapter not in AJCC8_T:
                    pr.add(
                        ("facts", f.name, "values", value, "ajcc"),
                        f"unknown AJCC chapter {chapter!r}; known: {', '.join(sorted(AJCC8_T))}",
                    )
        self._implications(facts)
        definitions: dict[str, Criterion] = {}
        for name, d in raw.definitions.items():
            c = self._criterion(d, ("definitions", name), definitions)
            if c is not None:
                definitions[name] = c
        versions = self._versions(definitions)
        notes = self._notes(definitions, {v.id for v in versions})
        if pr.items:
            raise PolicyLoadError(pr.items)
        assert governs is not None
        return Policy(
            id=raw.id,
            title=raw.title,
            publisher=raw.publisher,
            folder=self.folder,
            source_title=raw.source.title,
            source_text=self.source_text,
            last_updated=raw.source.last_updated,
            prior_authorization=raw.prior_authorization,
            parameters=dict(self.params),
            parameter_descriptions={k: fold(v.description) for k, v in raw.parameters.items()},
            facts=tuple(facts),
            fact_index={f.name: f for f in facts},
            code_lists=dict(self.code_lists),
            governs=governs,
            governs_service=raw.governs_service,
            rationale=rationale,
            notes=notes,
            versions=tuple(versions),
            review_by=raw.source.review_by,
            criterion_params=dict(self.criterion_params),
        )

    # -- parts

    def _cite(self, cite: str | list[str], path: tuple[Any, ...]) -> tuple[str, ...]:
        cites = [cite] if isinstance(cite, str) else cite
        out = []
        for c in cites:
            f = fold(c)
            if not f:
                self.pr.add(path, "citation is empty")
            elif self.source_text and f not in self.folded_source:
                self.pr.add(path, f"citation not found verbatim in the source document: {f!r}")
            out.append(f)
        return tuple(out)

    def _code_lists(self) -> None:
        cm = None
        for name, cl in self.raw.code_lists.items():
            path = ("code_lists", name)
            entries = list(cl.codes) if isinstance(cl.codes, dict) else cl.codes
            labels: dict[str, str] = {}
            since: dict[str, dt.date] = {}
            codes: set[str] = set()
            if cl.system == "ICD-10-CM":
                cm = cm or icd10cm()
                for i, e in enumerate(entries):
                    try:
                        codes |= cm.billable_under(e)
                    except KeyError:
                        self.pr.add((*path, "codes", i), f"{e!r} is not an ICD-10-CM code, block or range")
                entries = [normalize_icd10(e) for e in entries]
            else:
                entries = [normalize_procedure(str(e)) for e in entries]
                codes = set(entries)
                if cl.system == "ICD-10-PCS":
                    for i, e in enumerate(entries):
                        if not PCS_CODE_RE.match(e):
                            self.pr.add(
                                (*path, "codes", i), f"{e!r} is not an ICD-10-PCS code (seven characters)"
                            )
            if isinstance(cl.codes, dict):
                for code, entry in cl.codes.items():
                    labels[normalize_procedure(str(code))] = entry.label
                    if entry.since:
                        since[normalize_procedure(str(code))] = entry.since
            self.code_lists[name] = CodeList(
                name=name,
                system=cl.system,
                entries=tuple(entries),
                codes=frozenset(codes),
                labels=labels,
                since=since,
                note=fold(cl.note) if cl.note else None,
                latest_since=max(since.values()) if since else None,
                implies=dict(cl.implies or {}),
            )

    def _governs(self) -> CodeList | None:
        """The code list ``governs`` names, or the union of the lists it names."""
        names = [self.raw.governs] if isinstance(self.raw.governs, str) else self.raw.governs
        lists = []
        for name in names:
            cl = self.code_lists.get(name)
            if cl is None:
                self.pr.add(("governs",), f"governs names unknown code list {name!r}")
            lists.append(cl)
        if not lists or any(cl is None for cl in lists):
            return None
        found = [cl for cl in lists if cl is not None]
        if len(found) == 1:
            return found[0]
        since = {k: v for cl in found for k, v in cl.since.items()}
        return CodeList(
            name="+".join(cl.name for cl in found),
            system=", ".join(dict.fromkeys(cl.system for cl in found)),
            entries=tuple(e for cl in found for e in cl.entries),
            codes=frozenset().union(*(cl.codes for cl in found)),
            labels={k: v for cl in found for k, v in cl.labels.items()},
            since=since,
            latest_since=max(since.values()) if since else None,
        )

    def _facts(self) -> list[FactSpec]:
        out = []
        for name, f in self.raw.facts.items():
            path = ("facts", name)
            values = tuple(f.values) if f.values else None
            if f.type == "enum" and not values:
                self.pr.add(path, "an enum fact needs values")
            for syn, target in f.synonyms.items():
                if not values or target not in values:
                    self.pr.add((*path, "synonyms", syn), f"synonym {syn!r} maps to unknown value {target!r}")
            derive = self._derive(name, f, path) if f.derive else None
            if f.open is not None and (f.type != "enum" or f.open not in (values or ())):
                self.pr.add(
                    (*path, "open"), f"open names {f.open!r}, which is not a value of enum fact {name!r}"
                )
            if f.unit is not None and f.type != "number":
                self.pr.add((*path, "unit"), f"unit applies to number facts, not to {f.type} fact {name!r}")
            if f.unit is not None and f.type == "number" and not _known_unit(f.unit):
                self.pr.add((*path, "unit"), f"unknown unit {f.unit!r} (known: {', '.join(_units())})")
            out.append(
                FactSpec(
                    name=name,
                    type=f.type,
                    question=fold(f.question),
                    description=fold(f.description),
                    values=values,
                    labels={k: v.label for k, v in (f.values or {}).items()},
                    synonyms=dict(f.synonyms),
                    rationale={k: v.rationale for k, v in (f.values or {}).items() if v.rationale},
                    ajcc={k: v.ajcc for k, v in (f.values or {}).items() if v.ajcc},
                    minimum=f.minimum,
                    unit=f.unit,
                    multiple=f.multiple,
                    system=f.system,
                    derive=derive,
                    value_set=frozenset(values or ()),
                    open_value=f.open,
                )
            )
        return out

    def _derive(self, name: str, f: _Fact, path: tuple[Any, ...]) -> Derivation | None:
        d = f.derive
        assert d is not None
        path = (*path, "derive")
        src = self.raw.facts.get(d.from_)
        if src is None:
            self.pr.add(path, f"derive from unknown fact {d.from_!r}")
            return None
        values = set(f.values or ())
        if d.by_code_list is not None:
            if src.type != "codes" or f.type != "enum":
                self.pr.add(path, "by_code_list derives an enum fact from a codes fact")
                return None
            mapping = []
            for lst, val in d.by_code_list.items():
                cl = self.code_lists.get(lst)
                if cl is None:
                    self.pr.add((*path, "by_code_list", lst), f"unknown code list {lst!r}")
                    continue
                if val is not None and val != "ambiguous" and val not in values:
                    self.pr.add((*path, "by_code_list", lst), f"{val!r} is not a value of {name}")
                mapping.append((cl, val))
            return Derivation("by_code_list", d.from_, f"derived from {d.from_}", code_map=tuple(mapping))
        if d.bands is not None:
            if src.type != "number" or f.type != "enum":
                self.pr.add(path, "bands derive an enum fact from a number fact")
                return None
            bands: list[tuple[float | None, str]] = []
            consistent: dict[str, frozenset[str]] = {}
            for i, b in enumerate(d.bands):
                bound = self._number(b.get("at_most"), (*path, "bands", i)) if "at_most" in b else None
                val = b.get("value")
                if val not in values:
                    self.pr.add((*path, "bands", i), f"{val!r} is not a value of {name}")
                also = b.get("consistent_with") or []
                if not isinstance(also, list) or any(a not in values for a in also):
                    self.pr.add((*path, "bands", i), f"consistent_with lists values of {name}: {also!r}")
                    also = []
                if set(b) - {"at_most", "value", "consistent_with"}:
                    self.pr.add((*path, "bands", i), "a band has at_most, value and consistent_with only")
                bands.append((bound, str(val)))
                consistent[str(val)] = frozenset([str(val), *map(str, also)])
            if bands and bands[-1][0] is not None:
                self.pr.add((*path, "bands"), "the last band needs no bound (it catches the rest)")
            params = tuple(
                b["at_most"]["param"]
                for b in d.bands
                if isinstance(b.get("at_most"), dict) and "param" in b["at_most"]
            )
            return Derivation(
                "bands",
                d.from_,
                f"derived from {d.from_}",
                bands=tuple(bands),
                consistent=consistent,
                params=params,
            )
        if d.age_at is not None:
            at = self.raw.facts.get(d.age_at)
            if src.type != "date" or f.type != "number" or at is None or at.type != "date":
                self.pr.add(
                    path, "age derives a number fact from two date facts (from: birth date, age_at: date)"
                )
                return None
            return Derivation("age", d.from_, f"derived from {d.from_} and {d.age_at}", at=d.age_at)
        if d.prefix_r:
            if src.type != "staging" or f.type != "boolean":
                self.pr.add(path, "prefix_r derives a boolean fact from a staging fact")
                return None
            return Derivation("prefix_r", d.from_, f"derived from {d.from_}")
        if d.m_category:
            if src.type != "staging" or f.type != "boolean":
                self.pr.add(path, "m_category derives a boolean fact from a staging fact")
                return None
            return Derivation("m_category", d.from_, f"derived from {d.from_}")
        self.pr.add(path, "derive needs by_code_list, bands, prefix_r, m_category or age_at")
        return None

    def _number(self, v: Any, path: tuple[Any, ...]) -> float | None:
        if isinstance(v, dict) and set(v) == {"param"}:
            if v["param"] not in self.params:
                self.pr.add(path, f"unknown parameter {v['param']!r}")
                return None
            return self.params[v["param"]]
        if isinstance(v, int | float) and not isinstance(v, bool):
            return float(v)
        self.pr.add(path, f"expected a number or {{param: name}}, got {v!r}")
        return None

    def _rationale(self) -> dict[str, RationaleSection]:
        lines = self.source_text.splitlines()
        starts: dict[str, int] = {}
        for sid, s in self.raw.rationale.items():
            idx = next((i for i, ln in enumerate(lines) if ln.strip() == s.heading), None)
            if idx is None:
                self.pr.add(
                    ("rationale", sid, "heading"), f"heading {s.heading!r} is not a line of the source"
                )
            else:
                starts[sid] = idx
        ordered = sorted(starts.values())
        out: dict[str, RationaleSection] = {}
        for sid, s in self.raw.rationale.items():
            if sid not in starts:
                continue
            start = starts[sid]
            if s.until is not None:
                end = next((i for i, ln in enumerate(lines) if i > start and ln.strip() == s.until), None)
                if end is None:
                    self.pr.add(("rationale", sid, "until"), f"{s.until!r} is not a line after the heading")
                    continue
            else:
                end = next((i for i in ordered if i > start), len(lines))
            body = "\n".join(ln.rstrip() for ln in lines[start + 1 : end]).strip()
            conclusion = None
            if s.conclusion is not None:
                conclusion = fold(s.conclusion)
                if conclusion not in fold(body):
                    self.pr.add(
                        ("rationale", sid, "conclusion"),
                        f"conclusion not found verbatim in the section {s.heading!r}: {conclusion!r}",
                    )
            out[sid] = RationaleSection(sid, s.title, s.heading, body, start + 1, conclusion)
        return out

    def _criterion(
        self, d: Any, path: tuple[Any, ...], definitions: Mapping[str, Criterion]
    ) -> Criterion | None:
        pr = self.pr
        if not isinstance(d, dict):
            pr.add(path, f"a criterion is a mapping, got {d!r}")
            return None
        if set(d) == {"ref"}:
            ref = definitions.get(d["ref"])
            if ref is None:
                pr.add(path, f"ref names unknown definition {d['ref']!r}")
            return ref
        missing = [k for k in ("id", "title", "cite") if k not in d]
        if missing:
            pr.add(path, f"criterion needs {', '.join(missing)}")
            return None
        cid, title = str(d["id"]), fold(str(d["title"]))
        cite = self._cite(d["cite"], (*path, "cite"))
        line = pr.line(path)
        body = {k: v for k, v in d.items() if k not in _META}
        if set(body) == {"all_of"} or set(body) == {"any_of"}:
            key = "all_of" if "all_of" in body else "any_of"
            items = body[key]
            if not isinstance(items, list) or not items:
                pr.add((*path, key), f"{key} needs a non-empty list")
                return None
            kids = [self._criterion(x, (*path, key, i), definitions) for i, x in enumerate(items)]
            if any(k is None for k in kids):
                return None
            cls = AllOf if key == "all_of" else AnyOf
            return cls(cid, title, cite, line, items=tuple(k for k in kids if k is not None))
        if set(body) == {"not"}:
            kid = self._criterion(body["not"], (*path, "not"), definitions)
            return None if kid is None else Not(cid, title, cite, line, item=kid)
        if "fact" in body:
            return self._atom(cid, title, cite, line, body, path)
        pr.add(path, f"criterion {cid!r} needs all_of, any_of, not, ref or fact with an operator")
        return None

    def _atom(
        self,
        cid: str,
        title: str,
        cite: tuple[str, ...],
        line: int | None,
        body: dict[str, Any],
        path: tuple[Any, ...],
    ) -> Atom | None:
        pr = self.pr
        fact_name = body["fact"]
        ops = [k for k in body if k != "fact"]
        if len(ops) != 1 or ops[0] not in _ATOM_OPS:
            pr.add(path, f"criterion {cid!r} needs exactly one operator of {', '.join(_ATOM_OPS)}; got {ops}")
            return None
        op = ops[0]
        arg = body[op]
        fact = self.fact_types.get(fact_name)
        if fact is None:
            pr.add((*path, "fact"), f"criterion {cid!r} reads unknown fact {fact_name!r}")
            return None
        if fact.type not in _ATOM_OPS[op]:
            pr.add(path, f"operator {op!r} does not apply to {fact.type} fact {fact_name!r}")
            return None
        operand: Any
        if op in ("in", "equals"):
            vals = arg if isinstance(arg, list) else [arg]
            bad = [v for v in vals if v not in (fact.values or {})]
            if bad:
                pr.add(
                    (*path, op), f"{bad} not among the values of {fact_name!r}: {sorted(fact.values or {})}"
                )
            operand = frozenset(vals)
        elif op == "is":
            if not isinstance(arg, bool):
                pr.add((*path, op), f"'is' takes true or false, got {arg!r}")
            operand = frozenset([arg])
        elif op == "any_in":  # one code list, or several (CPT and ICD-10-PCS lists of one service)
            names = arg if isinstance(arg, list) else [arg]
            unknown = [n for n in names if n not in self.code_lists]
            if unknown or not names:
                pr.add((*path, op), f"unknown code list {', '.join(map(repr, unknown)) or '[]'}")
                return None
            operand = frozenset().union(*(self.code_lists[n].codes for n in names))
        elif op == "t_category":
            # A category without a subcategory letter names its whole family: "T4" is T4, T4a ... T4d.
            vals = arg if isinstance(arg, list) else [arg]
            bad = [v for v in vals if v not in T_CATEGORIES]
            if bad:
                pr.add((*path, op), f"{bad} are not AJCC T categories")
            operand = frozenset().union(*(t_family(str(v)) for v in vals))
        else:
            operand = self._number(arg, (*path, op))
            if isinstance(arg, dict) and "param" in arg:
                self.criterion_params[cid] = str(arg["param"])
        return Atom(cid, title, cite, line, fact=fact_name, op=op, operand=operand)

    def _versions(self, definitions: Mapping[str, Criterion]) -> list[Version]:
        out: list[Version] = []
        raws = self.raw.versions
        for i, v in enumerate(raws):
            path = ("versions", i)
            if i and v.effective_from <= raws[i - 1].effective_from:
                self.pr.add((*path, "effective_from"), "versions must be in order of effective_from")
            self._cite(v.history, (*path, "history"))
            rules = []
            for j, r in enumerate(v.rules):
                c = self._criterion(r.when, (*path, "rules", j, "when"), definitions)
                if c is not None:
                    rules.append(Rule(r.outcome, c, c))
            o = v.otherwise
            leaf = Criterion(
                o.id,
                fold(o.title),
                self._cite(o.cite, (*path, "otherwise", "cite")),
                self.pr.line((*path, "otherwise")),
            )
            ids: dict[str, int] = {}
            for rule in (*rules, Rule(o.outcome, None, leaf)):
                for c in rule.criterion.walk():
                    ids[c.id] = ids.get(c.id, 0) + 1
            dups = sorted(k for k, n in ids.items() if n > 1)
            if dups:
                self.pr.add(path, f"criterion ids must be unique within a version: {dups}")
            end = raws[i + 1].effective_from - dt.timedelta(days=1) if i + 1 < len(raws) else None
            out.append(
                Version(
                    v.id,
                    v.effective_from,
                    end,
                    fold(v.summary),
                    fold(v.history),
                    tuple(rules),
                    Rule(o.outcome, None, leaf),
                )
            )
        return out

    def _notes(self, definitions: Mapping[str, Criterion], version_ids: set[str]) -> tuple[PolicyNote, ...]:
        out = []
        for i, n in enumerate(self.raw.notes):
            path = ("notes", i)
            c = self._criterion(n.when, (*path, "when"), definitions)
            for vid in n.versions or ():
                if vid not in version_ids:
                    self.pr.add((*path, "versions"), f"unknown version {vid!r}")
            if c is not None:
                out.append(
                    PolicyNote(
                        n.id,
                        n.code,
                        c,
                        frozenset(n.versions) if n.versions is not None else None,
                        self._cite(n.cite, (*path, "cite")),
                        fold(n.text),
                        n.letter,
                    )
                )
        return tuple(out)

    def _implications(self, facts: list[FactSpec]) -> None:
        """Check each code list's ``implies``: a boolean or enum fact and one of its values."""
        index = {f.name: f for f in facts}
        for name, cl in self.code_lists.items():
            for fact, value in cl.implies.items():
                path = ("code_lists", name, "implies", fact)
                spec = index.get(fact)
                if spec is None or spec.type not in ("boolean", "enum"):
                    self.pr.add(path, f"implies names {fact!r}, not a boolean or enum fact")
                elif (spec.type == "boolean") != isinstance(value, bool) or (
                    spec.type == "enum" and value not in spec.value_set
                ):
                    self.pr.add(path, f"{value!r} is not a value of {fact!r}")
