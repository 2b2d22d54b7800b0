"""FHIR and CDS Hooks translation for medpolicy (pure functions, no web framework).

* :mod:`medpolicy.interop.fhir_case` -- FHIR R4 resources -> raw case dict for :func:`medpolicy.decide`
  (package): an order's codes and date, the member's Coverage and Patient, clinical values read from
  Observations and Conditions, :func:`~medpolicy.interop.fhir_case.extract_case`; its docstring lists its
  modules.
* :mod:`medpolicy.interop.crd` -- Determination -> Da Vinci CRD coverage-information extension and cards.
* :mod:`medpolicy.interop.cdshooks` -- CDS Hooks 2.0 (package): the CRD services and discovery document,
  settings, hook request checks, the orders and prefetch of a call, feedback; its docstring lists its
  modules.
* :mod:`medpolicy.interop.jwt_auth` -- CDS Hooks client JWT verification (asymmetric algorithms only).
* :mod:`medpolicy.interop.dtr` -- Da Vinci DTR (package): questionnaires generated from the policy,
  ``$questionnaire-package``, ``$next-question``, QuestionnaireResponse reading and ``$determine``,
  ``$log-questionnaire-errors``, ``ValueSet/$expand``; its docstring lists its modules.
* :mod:`medpolicy.interop.pas` -- Da Vinci PAS (package): request and inquiry Bundles -> case, the
  response Bundle with X12 306 review actions and the reviewers' corrections.
* :mod:`medpolicy.interop.parties_fhir` -- members, providers and clinical documents from PAS and CRD.
* :mod:`medpolicy.interop.capability` -- the CapabilityStatement of the FHIR endpoints.
"""
