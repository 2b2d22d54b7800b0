"""Reading a QuestionnaireResponse: its answers as case facts (:func:`questionnaire_response_to_case`), and
the rules it must keep (R4 model, ``information-origin``, required questions answered)."""

from __future__ import annotations

from collections.abc import Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from medpolicy import CaseError, FieldError, Policy
from medpolicy.interop import fhir_case
from medpolicy.interop.dtr.canonical import INFORMATION_ORIGIN_EXT, PREPOPULATION_EXTS
from medpolicy.interop.dtr.facts import _facts_by_name
from medpolicy.interop.dtr.validation import (
    FhirInputError,
    Problem,
    _invalid,
    _short,
    trim_codes,
    validate_fhir,
)

_ORIGIN_CODES = frozenset({"auto", "manual", "override"})


_QR_STATUSES = frozenset({"in-progress", "completed", "amended", "entered-in-error", "stopped"})


def _answer_values(item: Mapping[str, Any]) -> list[tuple[str, Any]]:
    """(value[x] key, value) of each answer of a QuestionnaireResponse item."""
    out: list[tuple[str, Any]] = []
    for answer in item.get("answer") or []:
        if not isinstance(answer, Mapping):
            continue
        for key, value in answer.items():
            if key.startswith("value"):
                out.append((key, value))
    return out


def _convert(fact: Any, key: str, value: Any) -> Any:
    """One answer as the fact's raw case value; raises ValueError when the answer type does not fit."""
    ftype = fact.type
    if key == "valueCoding" and isinstance(value, Mapping):
        value, key = value.get("code"), "valueString"
    if key == "valueQuantity" and isinstance(value, Mapping):
        value, key = value.get("value"), "valueDecimal"
    if ftype == "boolean":
        if key == "valueBoolean" and isinstance(value, bool):
            return value
        raise ValueError("a yes/no answer (valueBoolean) is expected")
    if ftype == "number":
        if (
            key in ("valueDecimal", "valueInteger")
            and isinstance(value, int | float)
            and not isinstance(value, bool)
        ):
            return value
        raise ValueError("a number (valueDecimal) is expected")
    if ftype == "date":
        if key in ("valueDate", "valueDateTime", "valueString") and isinstance(value, str):
            return value[:10]
        raise ValueError("a date (valueDate) is expected")
    if key == "valueString" and isinstance(value, str):
        return value.strip()
    raise ValueError(f"a coded or text answer is expected, not {key}")


@dataclass
class _CaseBuilder:
    facts: Mapping[str, Any]
    case: dict[str, Any] = field(default_factory=dict)
    errors: list[FieldError] = field(default_factory=list)
    procedure_codes: list[str] = field(default_factory=list)
    diagnosis_codes: list[str] = field(default_factory=list)
    answered: list[str] = field(default_factory=list)

    def add_item(self, item: Mapping[str, Any], path: str) -> None:
        link = str(item.get("linkId", ""))
        fact = self.facts.get(link)
        values = _answer_values(item)
        if fact is not None and values:
            converted: list[Any] = []
            for key, value in values:
                try:
                    converted.append(_convert(fact, key, value))
                except ValueError as exc:
                    self.errors.append(
                        FieldError("invalid_type", fact.name, _short(value), f"{path} (linkId {link}): {exc}")
                    )
            if fact.type == "codes":
                codes = [
                    c.strip() for v in converted if isinstance(v, str) for c in v.split(",") if c.strip()
                ]
                if codes:
                    self.case[fact.name] = codes
            elif getattr(fact, "multiple", False):
                self.case[fact.name] = converted
            elif len(converted) == 1:
                self.case[fact.name] = converted[0]
            elif len(converted) > 1:
                self.errors.append(
                    FieldError(
                        "invalid_type", fact.name, None, f"{path} (linkId {link}): only one answer is allowed"
                    )
                )
            self.answered.append(fact.name)
        elif fact is None:
            for key, value in values:
                if key == "valueCoding" and isinstance(value, Mapping):
                    system, code = value.get("system"), value.get("code")
                    if not isinstance(code, str) or not code.strip():
                        continue
                    if system in fhir_case.ICD10CM_SYSTEMS:
                        self.diagnosis_codes.append(code.strip())
                    elif system in fhir_case.CPT_SYSTEMS | fhir_case.HCPCS_SYSTEMS:
                        self.procedure_codes.append(code.strip())
        for i, child in enumerate(item.get("item") or []):
            if isinstance(child, Mapping):
                self.add_item(child, f"{path}.item[{i}]")
        for a, answer in enumerate(item.get("answer") or []):
            if isinstance(answer, Mapping):
                for i, child in enumerate(answer.get("item") or []):
                    if isinstance(child, Mapping):
                        self.add_item(child, f"{path}.answer[{a}].item[{i}]")


def _dedupe(values: Iterable[str]) -> list[str]:
    seen: dict[str, None] = {}
    for v in values:
        seen.setdefault(v, None)
    return list(seen)


def questionnaire_response_to_case(
    qr: Mapping[str, Any], policy: Policy | None, *, known_facts: Mapping[str, Any] | None = None
) -> tuple[dict[str, Any], list[str]]:
    """The raw case a QuestionnaireResponse states, and the facts it answered (in order).

    ``policy`` is the policy whose questionnaire was answered (``None``: not ours). Items whose
    ``linkId`` is a fact name become that fact (of ``policy``, else of ``known_facts``); in items that
    are not facts, ICD-10-CM and CPT/HCPCS codings count as diagnosis and procedure codes. Raises
    :class:`medpolicy.CaseError` when an answer has the wrong type for its fact.
    """
    facts = _facts_by_name(policy) if policy is not None else dict(known_facts or {})
    builder = _CaseBuilder(facts)
    for i, item in enumerate(qr.get("item") or []):
        if isinstance(item, Mapping):
            builder.add_item(item, f"QuestionnaireResponse.item[{i}]")
    if builder.errors:
        raise CaseError(builder.errors)
    case = builder.case
    if builder.procedure_codes and "procedure_codes" not in case:
        case["procedure_codes"] = _dedupe(builder.procedure_codes)
    if builder.diagnosis_codes and "diagnosis_codes" not in case:
        case["diagnosis_codes"] = _dedupe(builder.diagnosis_codes)
    return case, _dedupe(builder.answered)


def _walk_items(items: Any, path: str) -> Iterator[tuple[Mapping[str, Any], str]]:
    for i, item in enumerate(items or []):
        if not isinstance(item, Mapping):
            continue
        here = f"{path}.item[{i}]"
        yield item, here
        yield from _walk_items(item.get("item"), here)
        for a, answer in enumerate(item.get("answer") or []):
            if isinstance(answer, Mapping):
                yield from _walk_items(answer.get("item"), f"{here}.answer[{a}]")


def prepopulated_items(questionnaire: Mapping[str, Any]) -> dict[str, str]:
    """linkId -> the SDC extension (``initialExpression``, ``calculatedExpression``) by which
    ``questionnaire`` pre-populates that item, for every item (at any depth) that has one."""
    out: dict[str, str] = {}
    _prepopulated(questionnaire.get("item"), out)
    return out


def _prepopulated(items: Any, out: dict[str, str]) -> None:
    # Module functions rather than closures that call themselves: such a closure is a reference cycle
    # (function, cell, function) left for the garbage collector, one per request.
    for item in items or []:
        if not isinstance(item, Mapping):
            continue
        for ext in item.get("extension") or []:
            url = ext.get("url") if isinstance(ext, Mapping) else None
            kind = PREPOPULATION_EXTS.get(url) if isinstance(url, str) else None
            if kind and isinstance(item.get("linkId"), str):
                out.setdefault(item["linkId"], kind)
        _prepopulated(item.get("item"), out)


def _origin_problems(
    link: Any, path: str, ext: Mapping[str, Any], prepopulated_by: str | None
) -> list[Problem]:
    """The DTR rules one ``information-origin`` extension of an answer breaks."""
    subs = [sub for sub in ext.get("extension") or [] if isinstance(sub, Mapping)]
    sources = [sub.get("valueCode") for sub in subs if sub.get("url") == "source"]
    has_author = any(sub.get("url") == "author" for sub in subs)
    if len(sources) != 1 or sources[0] not in _ORIGIN_CODES:
        return [
            Problem(
                "invalid_origin",
                path,
                f"item {link!r}: information-origin needs a source: auto, manual or override",
                sources[0] if sources else None,
            )
        ]
    source = sources[0]
    problems: list[Problem] = []
    if prepopulated_by is not None and source == "manual":
        problems.append(
            Problem(
                "invalid_origin",
                f"{path}.extension.where(url='source')",
                f"item {link!r} is pre-populated by its Questionnaire ({prepopulated_by}): its answer's "
                "information-origin source is 'auto' (pre-populated, unchanged) or 'override' (changed "
                "by the user), not 'manual'",
                source,
            )
        )
    if source in ("manual", "override") and not has_author:
        problems.append(
            Problem(
                "origin_author_missing",
                path,
                f"item {link!r}: information-origin source {source!r} needs an author (DTR dtrx-1)",
                source,
            )
        )
    elif source == "auto" and has_author:
        problems.append(
            Problem(
                "origin_author_not_allowed",
                path,
                f"item {link!r}: information-origin source 'auto' has no author (DTR dtrx-1)",
                source,
            )
        )
    return problems


def _raise_problems(problems: Sequence[Problem]) -> None:
    """One 422 for the QuestionnaireResponse's problems (nothing when there are none)."""
    if not problems:
        return
    codes = {p.code for p in problems}
    code = problems[0].code if len(codes) == 1 else "invalid_questionnaire_response"
    message = (
        problems[0].message
        if len(problems) == 1
        else f"{len(problems)} problems in the QuestionnaireResponse"
    )
    raise FhirInputError(422, code, message, problems)


def check_questionnaire_response(
    qr: Mapping[str, Any],
    root: str = "QuestionnaireResponse",
    questionnaire: Mapping[str, Any] | None = None,
) -> None:
    """Rules a QuestionnaireResponse must keep beyond the R4 model, as one 422 listing every breach.

    * ``status`` is a QuestionnaireResponse status code;
    * an item has an answer or child items (FHIR-25949, R5 ``qrs-3``, SDC): a question without an
      answer is left out, not sent empty;
    * each ``information-origin`` extension (DTR) has one ``source`` of ``auto``, ``manual`` or
      ``override`` (``invalid_origin``), and an ``author`` exactly when the source is ``manual`` or
      ``override`` (DTR 2.0.1 invariant dtrx-1: ``origin_author_missing``,
      ``origin_author_not_allowed``);
    * with the ``questionnaire`` answered: an answer to an item that questionnaire pre-populates
      (``sdc-questionnaire-initialExpression`` / ``calculatedExpression``) is not ``manual``
      (``invalid_origin``): DTR marks a pre-populated answer ``auto``, and ``override`` once a user
      changes it; ``manual`` is for answers entered without pre-population.

    A single breach is answered with its own code; several with ``invalid_questionnaire_response``
    (one issue each), unless they share a code.
    """
    prepopulated = prepopulated_items(questionnaire) if questionnaire is not None else {}
    problems: list[Problem] = []
    status = qr.get("status")
    if status not in _QR_STATUSES:
        problems.append(
            Problem(
                "invalid_value", f"{root}.status", f"status must be one of {sorted(_QR_STATUSES)}", status
            )
        )
    for item, path in _walk_items(qr.get("item"), root):
        link = item.get("linkId")
        if not item.get("answer") and not item.get("item"):
            problems.append(
                Problem(
                    "item_without_answer",
                    path,
                    f"item {link!r} has neither an answer nor child items; unanswered questions are omitted",
                    link,
                )
            )
        for a, answer in enumerate(item.get("answer") or []):
            if not isinstance(answer, Mapping):
                continue
            for e, ext in enumerate(answer.get("extension") or []):
                if isinstance(ext, Mapping) and ext.get("url") == INFORMATION_ORIGIN_EXT:
                    problems.extend(
                        _origin_problems(
                            link,
                            f"{path}.answer[{a}].extension[{e}]",
                            ext,
                            prepopulated.get(link) if isinstance(link, str) else None,
                        )
                    )
    _raise_problems(problems)


def parse_questionnaire_response(
    body: Any, root: str = "QuestionnaireResponse", questionnaire: Mapping[str, Any] | None = None
) -> dict[str, Any]:
    """Validate a QuestionnaireResponse (R4 model plus :func:`check_questionnaire_response`, against
    ``questionnaire`` when given); the (code-trimmed) resource. Raises :class:`FhirInputError`."""
    qr = _validated_response(body, root)
    check_questionnaire_response(qr, root, questionnaire)
    return qr


def _validated_response(body: Any, root: str) -> dict[str, Any]:
    """The code-trimmed QuestionnaireResponse, validated against the R4 model only."""
    if not isinstance(body, Mapping):
        raise FhirInputError(400, "not_a_resource", "the body must be a FHIR resource (a JSON object)")
    qr = trim_codes(body)
    validate_fhir(qr, expected="QuestionnaireResponse", path=root)
    return qr  # type: ignore[no-any-return]


def _contained_questionnaire(qr: Mapping[str, Any], root: str) -> tuple[dict[str, Any], int]:
    ref = qr.get("questionnaire")
    if not isinstance(ref, str) or not ref.startswith("#"):
        raise _invalid(
            "an adaptive QuestionnaireResponse names its contained Questionnaire in 'questionnaire' (#id)",
            f"{root}.questionnaire",
            code="questionnaire_not_contained",
            value=ref,
        )
    for i, res in enumerate(qr.get("contained") or []):
        if (
            isinstance(res, Mapping)
            and res.get("resourceType") == "Questionnaire"
            and res.get("id") == ref[1:]
        ):
            return dict(res), i
    raise _invalid(
        f"the QuestionnaireResponse contains no Questionnaire with id {ref[1:]!r}",
        f"{root}.contained",
        code="questionnaire_not_contained",
        value=ref,
    )


def _answers_by_link(qr: Mapping[str, Any]) -> dict[str, list[tuple[str, Any]]]:
    answers: dict[str, list[tuple[str, Any]]] = {}
    for item, _ in _walk_items(qr.get("item"), "QuestionnaireResponse"):
        values = _answer_values(item)
        if values:
            answers.setdefault(str(item.get("linkId")), []).extend(values)
    return answers


def _same_answer(key: str, value: Any, ew: Mapping[str, Any]) -> bool | None:
    """Does answer (key, value) equal the enableWhen answer[x]? None when not comparable."""
    for ew_key, expected in ew.items():
        if not ew_key.startswith("answer"):
            continue
        if isinstance(expected, Mapping) and isinstance(value, Mapping):
            return bool(
                expected.get("code") == value.get("code")
                and (expected.get("system") in (None, value.get("system")) or value.get("system") is None)
            )
        if isinstance(expected, Mapping) or isinstance(value, Mapping):
            return None
        return bool(expected == value)
    return None


def _enabled(item: Mapping[str, Any], answers: Mapping[str, list[tuple[str, Any]]]) -> bool:
    """SDC enableWhen evaluation for the operators =, != and exists (others: treated as enabled)."""
    conditions = [c for c in item.get("enableWhen") or [] if isinstance(c, Mapping)]
    if not conditions:
        return True
    results: list[bool] = []
    for cond in conditions:
        given = answers.get(str(cond.get("question")), [])
        op = cond.get("operator")
        if op == "exists":
            results.append(bool(given) == bool(cond.get("answerBoolean")))
            continue
        if op not in ("=", "!="):
            return True
        matches = [_same_answer(k, v, cond) for k, v in given]
        if any(m is None for m in matches):
            return True
        hit = any(matches)
        results.append(hit if op == "=" else not hit)
    return all(results) if item.get("enableBehavior") == "all" else any(results)


def unanswered_required(questionnaire: Mapping[str, Any], qr: Mapping[str, Any], root: str) -> list[Problem]:
    """Required, enabled questions of ``questionnaire`` that ``qr`` does not answer."""
    problems: list[Problem] = []
    _unanswered(questionnaire.get("item"), _answers_by_link(qr), root, problems)
    return problems


def _unanswered(
    items: Any, answers: Mapping[str, list[tuple[str, Any]]], root: str, problems: list[Problem]
) -> None:
    for item in items or []:
        if not isinstance(item, Mapping) or not _enabled(item, answers):
            continue
        link = str(item.get("linkId"))
        if item.get("type") == "group":
            _unanswered(item.get("item"), answers, root, problems)
            continue
        if item.get("type") == "display":
            continue
        if item.get("required") and not answers.get(link):
            problems.append(
                Problem(
                    "required_answer_missing",
                    f"{root}.item.where(linkId='{link}')",
                    f"required question {link!r} ({item.get('text', '')}) has no answer",
                    link,
                )
            )
        _unanswered(item.get("item"), answers, root, problems)
