"""FHIR and CDS Hooks translation for medpolicy (pure functions, no web framework).

* :mod:`medpolicy.interop.fhir_case` -- FHIR R4 resources -> raw case dict for :func:`medpolicy.decide`.
* :mod:`medpolicy.interop.crd` -- Determination -> Da Vinci CRD coverage-information extension and cards.
* :mod:`medpolicy.interop.cdshooks` -- CDS Hooks 2.0 request parsing, discovery document, feedback shapes.
* :mod:`medpolicy.interop.jwt_auth` -- CDS Hooks client JWT verification (asymmetric algorithms only).
"""
