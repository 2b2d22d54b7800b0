"""Who a prior-authorization request is about and who asked: the member and the providers (pure).

* :class:`Member`: member id (the plan's, from ``Coverage.subscriberId`` or the Patient's identifier),
  name, date of birth, plan and group.
* :class:`Provider`: a requesting or servicing provider: name, individual NPI, the organisation with its
  NPI and TIN.
* :class:`Parties`: the member and the two providers of one request.

:func:`npi_valid` checks an NPI's check digit (Luhn over the ``80840`` prefix and the first nine digits,
as CMS specifies). :func:`parse_parties` validates the ``member`` / ``requesting_provider`` /
``servicing_provider`` objects of our ``/v1`` API and raises :class:`medpolicy.CaseError` whose errors
name the field, the value and why, with a stable code.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import asdict, dataclass
from datetime import date
from typing import Any

from medpolicy.errors import CaseError, FieldError

__all__ = [
    "Member",
    "Parties",
    "Provider",
    "npi_valid",
    "npi_with_check_digit",
    "parse_parties",
    "tin_valid",
]

_NPI = re.compile(r"^\d{10}$")
_TIN = re.compile(r"^\d{2}-?\d{7}$")
_MAX = 200


def npi_valid(npi: str) -> bool:
    """True for a ten-digit NPI whose last digit is the Luhn check digit of ``80840`` + its first nine."""
    if not _NPI.match(npi):
        return False
    digits = [int(d) for d in "80840" + npi]
    total = 0
    for i, d in enumerate(reversed(digits)):
        if i % 2 == 1:
            d *= 2
            if d > 9:
                d -= 9
        total += d
    return total % 10 == 0


def npi_with_check_digit(first_nine: str) -> str:
    """The ten-digit NPI whose first nine digits are `first_nine` (for synthetic demo data)."""
    for digit in "0123456789":
        if npi_valid(first_nine + digit):
            return first_nine + digit
    raise ValueError(f"not nine digits: {first_nine!r}")  # pragma: no cover


def tin_valid(tin: str) -> bool:
    """A US taxpayer identification number: nine digits, optionally written ``NN-NNNNNNN``."""
    return bool(_TIN.match(tin))


@dataclass(frozen=True)
class Member:
    member_id: str
    name: str | None = None
    birth_date: str | None = None  # ISO date
    plan: str | None = None
    group: str | None = None

    def label(self) -> str:
        """``Jane Doe (M-2002)``: how the queue and the letters name the member."""
        return f"{self.name} ({self.member_id})" if self.name else self.member_id


@dataclass(frozen=True)
class Provider:
    name: str | None = None
    npi: str | None = None
    organization: str | None = None
    organization_npi: str | None = None
    tin: str | None = None
    #: an NPI a FHIR submission gave that fails its check digit (kept to show, never used as an NPI)
    npi_invalid: str | None = None

    def label(self) -> str:
        parts = [self.name or self.organization or "provider not named"]
        if self.npi:
            parts.append(f"NPI {self.npi}")
        if self.name and self.organization:
            parts.append(self.organization)
        return ", ".join(parts)


@dataclass(frozen=True)
class Parties:
    member: Member | None = None
    requesting: Provider | None = None
    servicing: Provider | None = None

    def to_dict(self) -> dict[str, Any]:
        return {
            "member": asdict(self.member) if self.member else None,
            "requesting_provider": asdict(self.requesting) if self.requesting else None,
            "servicing_provider": asdict(self.servicing) if self.servicing else None,
        }

    @classmethod
    def from_dict(cls, data: Mapping[str, Any] | None) -> Parties:
        data = data or {}
        member = data.get("member")
        req = data.get("requesting_provider")
        srv = data.get("servicing_provider")
        return cls(
            Member(**member) if isinstance(member, Mapping) else None,
            Provider(**req) if isinstance(req, Mapping) else None,
            Provider(**srv) if isinstance(srv, Mapping) else None,
        )

    @property
    def empty(self) -> bool:
        return self.member is None and self.requesting is None and self.servicing is None


def _text(obj: Mapping[str, Any], key: str, path: str, errors: list[FieldError]) -> str | None:
    value = obj.get(key)
    if value is None or value == "":
        return None
    if not isinstance(value, str):
        errors.append(FieldError("invalid_type", f"{path}.{key}", value, f"{path}.{key} must be text"))
        return None
    value = " ".join(value.split())
    if len(value) > _MAX:
        errors.append(
            FieldError("too_long", f"{path}.{key}", value[:40], f"{path}.{key} is longer than {_MAX}")
        )
        return None
    return value


def _unknown_keys(obj: Mapping[str, Any], known: set[str], path: str, errors: list[FieldError]) -> None:
    for key in obj:
        if key not in known:
            errors.append(FieldError("unknown_field", f"{path}.{key}", key, f"{path} has no field {key!r}"))


def check_npi(value: str | None, field: str, errors: list[FieldError]) -> str | None:
    if value is None:
        return None
    if not npi_valid(value):
        errors.append(
            FieldError(
                "invalid_npi",
                field,
                value,
                "an NPI is ten digits whose last is the Luhn check digit (with the 80840 prefix)",
            )
        )
        return None
    return value


def _member(obj: Any, errors: list[FieldError]) -> Member | None:
    if obj is None:
        return None
    if not isinstance(obj, Mapping):
        errors.append(FieldError("invalid_type", "member", obj, "member must be an object"))
        return None
    _unknown_keys(obj, {"member_id", "name", "birth_date", "plan", "group"}, "member", errors)
    member_id = _text(obj, "member_id", "member", errors)
    if member_id is None:
        errors.append(FieldError("missing_field", "member.member_id", None, "a member needs its member id"))
    birth = _text(obj, "birth_date", "member", errors)
    if birth is not None:
        try:
            born = date.fromisoformat(birth)
        except ValueError:
            errors.append(
                FieldError("invalid_date", "member.birth_date", birth, "a date of birth is YYYY-MM-DD")
            )
            birth = None
        else:
            if born > date.today() or born.year < 1880:
                errors.append(
                    FieldError("invalid_date", "member.birth_date", birth, "not a possible date of birth")
                )
                birth = None
    if member_id is None:
        return None
    return Member(
        member_id,
        _text(obj, "name", "member", errors),
        birth,
        _text(obj, "plan", "member", errors),
        _text(obj, "group", "member", errors),
    )


def _provider(obj: Any, path: str, errors: list[FieldError]) -> Provider | None:
    if obj is None:
        return None
    if not isinstance(obj, Mapping):
        errors.append(FieldError("invalid_type", path, obj, f"{path} must be an object"))
        return None
    _unknown_keys(obj, {"name", "npi", "organization", "organization_npi", "tin"}, path, errors)
    npi = check_npi(_text(obj, "npi", path, errors), f"{path}.npi", errors)
    org_npi = check_npi(_text(obj, "organization_npi", path, errors), f"{path}.organization_npi", errors)
    tin = _text(obj, "tin", path, errors)
    if tin is not None and not tin_valid(tin):
        errors.append(FieldError("invalid_tin", f"{path}.tin", tin, "a TIN is nine digits (NN-NNNNNNN)"))
        tin = None
    name = _text(obj, "name", path, errors)
    org = _text(obj, "organization", path, errors)
    if not (name or org):
        errors.append(
            FieldError("missing_field", f"{path}.name", None, f"{path} needs a name or organization")
        )
    return Provider(name, npi, org, org_npi, tin)


def parse_parties(
    member: Any = None, requesting_provider: Any = None, servicing_provider: Any = None
) -> Parties:
    """Validate the member and provider objects of a ``/v1`` request (raises CaseError)."""
    errors: list[FieldError] = []
    parties = Parties(
        _member(member, errors),
        _provider(requesting_provider, "requesting_provider", errors),
        _provider(servicing_provider, "servicing_provider", errors),
    )
    if errors:
        raise CaseError(errors)
    return parties
