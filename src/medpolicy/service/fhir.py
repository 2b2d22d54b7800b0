"""``GET /fhir/metadata``: the CapabilityStatement of the FHIR endpoints (DTR and PAS).

Public, as FHIR clients read it before anything else (to learn the FHIR version, the format and the
operations); it holds no patient data. Built by :mod:`medpolicy.interop.capability`.
"""

from __future__ import annotations

from datetime import UTC, datetime

from fastapi import APIRouter, Request
from fastapi.responses import JSONResponse

from medpolicy.interop.capability import capability_statement
from medpolicy.service.app import service_version
from medpolicy.service.errors import FHIR_MEDIA_TYPE

FHIR_PATH_PREFIXES = ("/fhir",)

router = APIRouter(prefix="/fhir", tags=["FHIR"])


@router.get("/metadata", summary="The FHIR CapabilityStatement (public)", response_class=JSONResponse)
async def metadata(request: Request) -> JSONResponse:
    statement = capability_statement(
        base_url=str(request.base_url),
        software_version=service_version(),
        published=datetime.now(UTC).date(),
    )
    return JSONResponse(statement, media_type=FHIR_MEDIA_TYPE)
