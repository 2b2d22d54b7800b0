"""DTR request errors and validation: :class:`FhirInputError` and :class:`Problem`, validation against the
``fhir.resources.R4B`` models, code trimming, and reading single parameters of a Parameters resource."""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from pydantic import ValidationError

from medpolicy.errors import MedpolicyError


@dataclass(frozen=True, slots=True)
class Problem:
    """One issue with a request: stable ``code``, FHIRPath-like ``field``, the ``value``, a ``message``."""

    code: str
    field: str | None
    message: str
    value: Any = None

    def to_dict(self) -> dict[str, Any]:
        return {"code": self.code, "field": self.field, "value": self.value, "message": self.message}


class FhirInputError(MedpolicyError):
    """A FHIR request that cannot be processed. ``status`` is the HTTP status (400, 404 or 422)."""

    def __init__(self, status: int, code: str, message: str, problems: Sequence[Problem] = ()) -> None:
        super().__init__(message)
        self.status = status
        self.code = code
        self.message = message
        self.problems: list[Problem] = list(problems) or [Problem(code, None, message)]


def _invalid(
    message: str, field: str | None, *, code: str = "invalid_resource", value: Any = None
) -> FhirInputError:
    return FhirInputError(422, code, message, [Problem(code, field, message, value)])


def _loc_path(root: str, loc: Sequence[Any]) -> str:
    path = root
    for part in loc:
        path = f"{path}[{part}]" if isinstance(part, int) else f"{path}.{part}"
    return path


def validate_fhir(
    resource: Any, *, expected: str | Iterable[str] | None = None, path: str | None = None
) -> None:
    """Validate ``resource`` (FHIR JSON) against the ``fhir.resources.R4B`` model of its type.

    Raises :class:`FhirInputError` (422, ``invalid_resource``) naming every invalid element, or
    (``wrong_resource_type``) when it is not a resource or not of an ``expected`` type.
    """
    from fhir.resources.R4B import get_fhir_model_class

    where = path or "resource"
    if not isinstance(resource, Mapping) or not isinstance(resource.get("resourceType"), str):
        raise _invalid(f"{where} is not a FHIR resource (no resourceType)", where, code="not_a_resource")
    rtype = resource["resourceType"]
    if expected is not None:
        allowed = {expected} if isinstance(expected, str) else set(expected)
        if rtype not in allowed:
            wanted = " or ".join(sorted(allowed))
            raise _invalid(
                f"{where} must be a {wanted}, not a {rtype}", where, code="wrong_resource_type", value=rtype
            )
    try:
        model = get_fhir_model_class(rtype)
    except (KeyError, ValueError) as exc:
        raise _invalid(
            f"{where}: unknown resource type {rtype!r}", where, code="unknown_resource_type"
        ) from exc
    try:
        model.model_validate(dict(resource))
    except ValidationError as exc:
        root = path or rtype
        problems = [
            Problem(
                "invalid_resource",
                _loc_path(root, err.get("loc", ())),
                str(err.get("msg", "invalid")).lower(),
                None if err.get("type") == "missing" else _short(err.get("input")),
            )
            for err in exc.errors()
        ]
        count = len(problems)
        message = problems[0].message if count == 1 else f"{count} elements of the {rtype} are invalid"
        if count == 1 and problems[0].field:
            message = f"{problems[0].field}: {message}"
        raise FhirInputError(422, "invalid_resource", message, problems) from None


def _short(value: Any) -> Any:
    if isinstance(value, str | int | float | bool) or value is None:
        return value
    return None


def trim_codes(value: Any) -> Any:
    """A copy of FHIR JSON with leading/trailing white space removed from every ``code`` string.

    Lenient on purpose: the DTR kit's conformant QuestionnaireResponse codes a diagnosis as ``" G30.0"``.
    """
    if isinstance(value, Mapping):
        return {
            k: (v.strip() if k == "code" and isinstance(v, str) else trim_codes(v)) for k, v in value.items()
        }
    if isinstance(value, list):
        return [trim_codes(v) for v in value]
    return value


def _one_parameter(
    hits: Sequence[tuple[int, Mapping[str, Any]]], name: str, root: str
) -> tuple[int, Mapping[str, Any]]:
    """The one parameter ``name`` (index, parameter) among ``hits``; 422 when missing or repeated."""
    if len(hits) != 1:
        what = "is missing" if not hits else "is given more than once"
        raise _invalid(
            f"the {name!r} parameter {what}; exactly one is required",
            f"{root}.parameter.where(name='{name}')",
            code="missing_parameter" if not hits else "repeated_parameter",
        )
    return hits[0]


def _single_resource_param(params: Any, name: str, root: str = "Parameters") -> tuple[dict[str, Any], str]:
    if not isinstance(params, Mapping):
        raise FhirInputError(
            400, "not_a_resource", "the body must be a FHIR Parameters resource (a JSON object)"
        )
    params = trim_codes(params)
    validate_fhir(params, expected="Parameters", path=root)
    found = [
        (i, p)
        for i, p in enumerate(params.get("parameter") or [])
        if isinstance(p, Mapping) and p.get("name") == name
    ]
    i, param = _one_parameter(found, name, root)
    resource = param.get("resource")
    path = f"{root}.parameter[{i}].resource"
    if not isinstance(resource, Mapping):
        raise _invalid(f"the {name!r} parameter must carry a resource", path, code="missing_parameter")
    return dict(resource), path


def _params_by_name(params: Mapping[str, Any]) -> dict[str, list[tuple[int, Mapping[str, Any]]]]:
    by: dict[str, list[tuple[int, Mapping[str, Any]]]] = {}
    for i, p in enumerate(params.get("parameter") or []):
        if isinstance(p, Mapping):
            by.setdefault(str(p.get("name")), []).append((i, p))
    return by
