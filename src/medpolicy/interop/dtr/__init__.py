"""Da Vinci DTR (Documentation Templates and Rules, STU 2.0.1) <-> medpolicy (pure, no web framework).

This package re-exports every public name of its modules, so ``from medpolicy.interop import dtr`` and
``dtr.build_questionnaire(...)`` keep working. The modules, one job each:

* :mod:`~medpolicy.interop.dtr.canonical` -- canonical URLs, DTR/SDC profiles and extensions, policy lookup.
* :mod:`~medpolicy.interop.dtr.validation` -- :class:`FhirInputError`, :class:`Problem`, R4 validation.
* :mod:`~medpolicy.interop.dtr.facts` -- helpers over a policy's facts and the engine's answers.
* :mod:`~medpolicy.interop.dtr.questionnaire` -- Questionnaires and their engine-derived ``enableWhen``.
* :mod:`~medpolicy.interop.dtr.responses` -- QuestionnaireResponse answers -> case facts; response rules.
* :mod:`~medpolicy.interop.dtr.determine` -- a submitted response decided; the determination extension.
* :mod:`~medpolicy.interop.dtr.next_question` -- ``$next-question`` (adaptive forms).
* :mod:`~medpolicy.interop.dtr.package` -- ``$questionnaire-package`` and its pre-populated draft response.
* :mod:`~medpolicy.interop.dtr.error_reports` -- ``$log-questionnaire-errors``.
* :mod:`~medpolicy.interop.dtr.value_sets` -- ``ValueSet/$expand`` of the enum facts.

Names with a leading underscore are shared between these modules only.

What the package does:


* **Questionnaires from the policy.** :func:`build_questionnaire` turns a policy's declared facts
  (``Policy.facts``) into a FHIR R4 ``Questionnaire`` (profile ``dtr-std-questionnaire``): one item per
  fact the policy can ask about, ``linkId`` = fact name. Each item carries ``enableWhen`` conditions
  computed *from the engine*, not hand-written: for every fact ``G`` with a finite set of answers (an
  enum, a boolean) and every answer ``v``, :func:`medpolicy.decide` is asked which facts are still
  missing once ``G = v`` is known. A fact that is never missing under ``G = v`` cannot change the
  outcome then, so its item is enabled only for the answers of ``G`` under which it still matters.
  Nothing about IORT is hard-coded; the same generator works for any policy.
* **$questionnaire-package** (:func:`questionnaire_package`): DTR input Parameters (coverage, order(s),
  questionnaire canonicals, context) -> output Parameters with one ``PackageBundle`` per policy that
  governs an order (Questionnaire first, then a draft QuestionnaireResponse pre-populated from the
  order, with ``qr-context`` extensions naming the Coverage and the order). Orders no policy governs,
  and canonicals this payer does not serve, give warnings in the ``outcome`` parameter.
* **$next-question** (:func:`next_question`, SDC adaptive forms): input Parameters with a
  ``questionnaire-response`` and its contained Questionnaire. For ours, the answers so far become a
  case, the engine decides, and the next question is the first of ``Determination.missing_facts``
  not yet asked. When the outcome is definite (or every missing fact has been asked and left
  unanswered) the QuestionnaireResponse is ``completed`` and carries the determination in the
  :data:`DETERMINATION_EXT` extension (and a read-only display item states it in words). Another
  party's adaptive questionnaire has no question of ours: it is ``completed`` at once, with a note.
* **QuestionnaireResponse checks** (:func:`check_questionnaire_response`): DTR ``information-origin``
  rules, including, when the Questionnaire is known (contained, ours, or supplied with the response
  to ``$determine``), that an answer to an item it pre-populates is not ``manual``.
* **$log-questionnaire-errors** (:func:`parse_questionnaire_errors`): a DTR application reports what
  went wrong with one of our questionnaires (an OperationOutcome, no PHI); the service stores it for
  the policy analysts.
* **ValueSet/$expand** (:func:`expand_value_set`): the answers of each enum fact as a value set
  (``{CANONICAL_BASE}/ValueSet/<fact>``), filtered and paged; the DTR payer service SHALL offer it.
* **QuestionnaireResponse -> case** (:func:`questionnaire_response_to_case`): answers whose ``linkId``
  is a fact name become that fact; in a response to a questionnaire that is not ours, ICD-10-CM and
  CPT/HCPCS codings anywhere in the answers still count as diagnosis and procedure codes.

FHIR version: requests and responses are FHIR R4 (4.0.1) JSON. They are validated with the
``fhir.resources.R4B`` models (fhir.resources 8 ships no R4 package; R4B is the closest published
model set and accepts every R4 construct used here).

Errors: every problem with a request raises :class:`FhirInputError` (HTTP status, stable code, and one
:class:`Problem` per issue with a FHIRPath-like location), which the service renders as an
``OperationOutcome``. Invalid case values raise :class:`medpolicy.CaseError`.
"""

from __future__ import annotations

from medpolicy.interop.dtr.canonical import (
    ADAPTIVE_EXT,
    CANONICAL_BASE,
    DETERMINATION_EXT,
    DTR,
    DTR_ADAPT,
    DTR_ADAPT_SEARCH,
    DTR_PACKAGE_BUNDLE,
    DTR_PACKAGE_OUTPUT,
    DTR_QR_PROFILE,
    DTR_STD_QUESTIONNAIRE,
    INFORMATION_ORIGIN_EXT,
    MIN_VALUE_EXT,
    PREPOPULATION_EXTS,
    QR_CONTEXT_EXT,
    SDC,
    SDC_NEXT_QUESTION_OUT,
    SDC_QR_ADAPT,
    UCUM,
    UNIT_EXT,
    adaptive_questionnaire_url,
    fact_code_system,
    policy_for_questionnaire,
    policy_version,
    questionnaire_url,
    value_set_url,
)
from medpolicy.interop.dtr.determine import (
    NO_POLICY_SUMMARY,
    NOTE_LINK_ID,
    ResponseDetermination,
    determination_extension,
    determination_summary,
    determine_questionnaire_response,
    no_policy_extension,
)
from medpolicy.interop.dtr.error_reports import QuestionnaireErrorReport, parse_questionnaire_errors
from medpolicy.interop.dtr.facts import all_facts
from medpolicy.interop.dtr.next_question import NextQuestionResult, next_question
from medpolicy.interop.dtr.package import PACKAGE_ORDER_TYPES, PackageResult, questionnaire_package
from medpolicy.interop.dtr.questionnaire import (
    EnableCondition,
    build_adaptive_questionnaire,
    build_questionnaire,
    derivation_sources,
    enable_conditions,
    question_item,
    questionnaire_date,
    relevant_facts,
)
from medpolicy.interop.dtr.responses import (
    check_questionnaire_response,
    parse_questionnaire_response,
    prepopulated_items,
    questionnaire_response_to_case,
    unanswered_required,
)
from medpolicy.interop.dtr.validation import FhirInputError, Problem, trim_codes, validate_fhir
from medpolicy.interop.dtr.value_sets import (
    ExpandRequest,
    expand_arguments,
    expand_request,
    expand_value_set,
    value_sets,
)

__all__ = [
    "ADAPTIVE_EXT",
    "CANONICAL_BASE",
    "DETERMINATION_EXT",
    "DTR",
    "DTR_ADAPT",
    "DTR_ADAPT_SEARCH",
    "DTR_PACKAGE_BUNDLE",
    "DTR_PACKAGE_OUTPUT",
    "DTR_QR_PROFILE",
    "DTR_STD_QUESTIONNAIRE",
    "INFORMATION_ORIGIN_EXT",
    "MIN_VALUE_EXT",
    "NOTE_LINK_ID",
    "NO_POLICY_SUMMARY",
    "PACKAGE_ORDER_TYPES",
    "PREPOPULATION_EXTS",
    "QR_CONTEXT_EXT",
    "SDC",
    "SDC_NEXT_QUESTION_OUT",
    "SDC_QR_ADAPT",
    "UCUM",
    "UNIT_EXT",
    "EnableCondition",
    "ExpandRequest",
    "FhirInputError",
    "NextQuestionResult",
    "PackageResult",
    "Problem",
    "QuestionnaireErrorReport",
    "ResponseDetermination",
    "adaptive_questionnaire_url",
    "all_facts",
    "build_adaptive_questionnaire",
    "build_questionnaire",
    "check_questionnaire_response",
    "derivation_sources",
    "determination_extension",
    "determination_summary",
    "determine_questionnaire_response",
    "enable_conditions",
    "expand_arguments",
    "expand_request",
    "expand_value_set",
    "fact_code_system",
    "next_question",
    "no_policy_extension",
    "parse_questionnaire_errors",
    "parse_questionnaire_response",
    "policy_for_questionnaire",
    "policy_version",
    "prepopulated_items",
    "question_item",
    "questionnaire_date",
    "questionnaire_package",
    "questionnaire_response_to_case",
    "questionnaire_url",
    "relevant_facts",
    "trim_codes",
    "unanswered_required",
    "validate_fhir",
    "value_set_url",
    "value_sets",
]
