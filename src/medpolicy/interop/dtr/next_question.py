"""SDC/DTR ``Questionnaire/$next-question`` (adaptive forms): the next question is the first fact the
engine still misses; a complete form carries the determination."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from medpolicy import Determination, Policy, PolicySet
from medpolicy.interop.dtr.canonical import (
    ADAPTIVE_EXT,
    DETERMINATION_EXT,
    DTR_ADAPT,
    SDC_NEXT_QUESTION_OUT,
    SDC_QR_ADAPT,
    policy_for_questionnaire,
)
from medpolicy.interop.dtr.determine import (
    NOTE_LINK_ID,
    _decide_by_codes,
    _display_text,
    determination_extension,
    no_policy_extension,
)
from medpolicy.interop.dtr.facts import _INFORMATION_NEEDED, _decide, _facts_by_name, _outcome
from medpolicy.interop.dtr.questionnaire import _narrative, question_item
from medpolicy.interop.dtr.responses import (
    _contained_questionnaire,
    _validated_response,
    _walk_items,
    check_questionnaire_response,
    questionnaire_response_to_case,
    unanswered_required,
)
from medpolicy.interop.dtr.validation import FhirInputError, _single_resource_param


@dataclass(frozen=True)
class NextQuestionResult:
    """Output of :func:`next_question`: the Parameters to answer, and (when complete) the case and
    determination to store."""

    parameters: dict[str, Any]
    questionnaire_response: dict[str, Any]
    #: The policy decided; ``None`` for another party's questionnaire whose answers no policy governs.
    policy: Policy | None
    case: dict[str, Any]
    #: ``None`` exactly when ``policy`` is ``None`` (nothing to store).
    determination: Determination | None
    complete: bool
    asked: str | None
    #: ``True`` when the contained Questionnaire is not one of ours (completed at once; see
    #: :func:`next_question`).
    foreign: bool = False


def next_question(params: Any, policies: PolicySet) -> NextQuestionResult:
    """SDC/DTR ``Questionnaire/$next-question``.

    The QuestionnaireResponse is checked against its contained Questionnaire: the R4 model and
    :func:`check_questionnaire_response` (information-origin rules, including that an answer to an
    item the Questionnaire pre-populates is not ``manual``), then every required enabled question
    must be answered.

    A contained Questionnaire that is one of our adaptive questionnaires is administered: the next
    question is the first fact the engine still misses. Any other adaptive questionnaire (another
    party's, e.g. Inferno's dinner order) has no question this payer could ask: per SDC ("when the
    questionnaire is complete, the server updates the status") and DTR ("the final call ... echo back
    of the QuestionnaireResponse with no further questions ... set to complete") the response is
    echoed back ``completed`` at once, its contained Questionnaire gets a ``display`` item saying
    why, and the determination extension says what this payer's policies make of its answers (read
    for ICD-10-CM / CPT / HCPCS codings, as ``$determine`` does): usually ``not_applicable``.

    Raises :class:`FhirInputError`: 400/422 for a malformed request (no ``questionnaire-response``,
    an invalid QuestionnaireResponse, a required question left unanswered). Raises
    :class:`medpolicy.CaseError` when an answer is not a valid value of its fact.
    """
    qr_in, path = _single_resource_param(params, "questionnaire-response")
    qr = _validated_response(qr_in, path)
    questionnaire, q_index = _contained_questionnaire(qr, path)
    check_questionnaire_response(qr, path, questionnaire)
    missing_required = unanswered_required(questionnaire, qr, path)
    if missing_required:
        first = missing_required[0]
        message = (
            first.message
            if len(missing_required) == 1
            else f"{len(missing_required)} required questions have no answer"
        )
        raise FhirInputError(422, "required_answer_missing", message, missing_required)
    canonicals = [questionnaire.get("url"), *(questionnaire.get("derivedFrom") or [])]
    match = next(
        (m for c in canonicals if isinstance(c, str) and (m := policy_for_questionnaire(c, policies))), None
    )
    if match is None:
        return _complete_foreign(qr, questionnaire, q_index, policies)
    policy, _adaptive = match
    case, _answered = questionnaire_response_to_case(qr, policy)
    det = _decide(case, policies, policy)
    facts = _facts_by_name(policy)
    asked_links = {str(i.get("linkId")) for i, _ in _walk_items(questionnaire.get("item"), "Questionnaire")}
    next_fact: Any = None
    if _outcome(det) == _INFORMATION_NEEDED:
        for missing in det.missing_facts:
            if missing.name not in asked_links and missing.name in facts:
                next_fact = facts[missing.name]
                break
    out_q = dict(questionnaire)
    out_q.setdefault("extension", [])
    if not any(isinstance(e, Mapping) and e.get("url") == ADAPTIVE_EXT for e in out_q["extension"]):
        out_q["extension"] = [*out_q["extension"], {"url": ADAPTIVE_EXT, "valueBoolean": True}]
    out_q.setdefault("meta", {"profile": [DTR_ADAPT]})
    out_q.setdefault("status", "active")
    out_q.setdefault("text", _narrative(str(out_q.get("title") or policy.id), ["adaptive questionnaire"]))
    items = [i for i in out_q.get("item") or [] if i.get("linkId") != "determination"]
    out_qr = dict(qr)
    out_qr.setdefault("meta", {"profile": [SDC_QR_ADAPT]})
    extensions = [
        e
        for e in out_qr.get("extension") or []
        if not (isinstance(e, Mapping) and e.get("url") == DETERMINATION_EXT)
    ]
    if next_fact is not None:
        items.append(question_item(next_fact))
        out_qr["status"] = "in-progress"
        complete = False
    else:
        items.append({"linkId": "determination", "type": "display", "text": _display_text(det)})
        out_qr["status"] = "completed"
        extensions.append(determination_extension(det))
        complete = True
    out_q["item"] = items
    if extensions:
        out_qr["extension"] = extensions
    else:
        out_qr.pop("extension", None)
    parameters = _next_question_output(out_qr, out_q, q_index)
    return NextQuestionResult(
        parameters=parameters,
        questionnaire_response=out_qr,
        policy=policy,
        case=case,
        determination=det,
        complete=complete,
        asked=next_fact.name if next_fact is not None else None,
    )


def _all_link_ids(questionnaire: Mapping[str, Any]) -> set[str]:
    return {str(i.get("linkId")) for i, _ in _walk_items(questionnaire.get("item"), "Questionnaire")}


def _complete_foreign(
    qr: Mapping[str, Any], questionnaire: Mapping[str, Any], q_index: int, policies: PolicySet
) -> NextQuestionResult:
    """$next-question for an adaptive questionnaire that is not ours: this payer has no question to
    add, so the response is completed, with a display item and the determination extension saying
    so (or, when its codings fall under a policy, that policy's determination)."""
    name = (
        questionnaire.get("url") or (questionnaire.get("derivedFrom") or [None])[0] or questionnaire.get("id")
    )
    policy, case, det = _decide_by_codes(qr, policies)
    out_q = dict(questionnaire)
    items = [
        i
        for i in out_q.get("item") or []
        if not (isinstance(i, Mapping) and i.get("linkId") == NOTE_LINK_ID and i.get("type") == "display")
    ]
    link, n = NOTE_LINK_ID, 0
    taken = _all_link_ids({"item": items})
    while link in taken:
        n += 1
        link = f"{NOTE_LINK_ID}-{n}"
    if det is None:
        note = (
            f"This payer does not administer the adaptive questionnaire {name!r} and no medical "
            "policy of this payer needs information from it: there are no further questions."
        )
    else:
        note = (
            f"This payer does not administer the adaptive questionnaire {name!r}; its answers were "
            f"read for their codes. {_display_text(det)}"
        )
    items.append({"linkId": link, "type": "display", "text": note})
    out_q["item"] = items
    out_qr = dict(qr)
    out_qr.setdefault("meta", {"profile": [SDC_QR_ADAPT]})
    extensions = [
        e
        for e in out_qr.get("extension") or []
        if not (isinstance(e, Mapping) and e.get("url") == DETERMINATION_EXT)
    ]
    extensions.append(determination_extension(det) if det is not None else no_policy_extension(note))
    out_qr["extension"] = extensions
    out_qr["status"] = "completed"
    parameters = _next_question_output(out_qr, out_q, q_index)
    return NextQuestionResult(
        parameters=parameters,
        questionnaire_response=out_qr,
        policy=policy,
        case=case,
        determination=det,
        complete=True,
        asked=None,
        foreign=True,
    )


def _next_question_output(out_qr: dict[str, Any], out_q: dict[str, Any], q_index: int) -> dict[str, Any]:
    """Put the updated Questionnaire back in the response, stamp it, and wrap it as the operation's
    output Parameters (SDC next-question out)."""
    contained = list(out_qr.get("contained") or [])
    contained[q_index] = out_q
    out_qr["contained"] = contained
    out_qr["authored"] = datetime.now(UTC).isoformat(timespec="seconds")
    return {
        "resourceType": "Parameters",
        "meta": {"profile": [SDC_NEXT_QUESTION_OUT]},
        "parameter": [{"name": "return", "resource": out_qr}],
    }
