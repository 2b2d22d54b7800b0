"""The baseline of the service benchmark: a bare FastAPI app on the same server stack as medpolicy's.

    python bench/bare_service.py PORT        (MEDPOLICY_DATA_DIR: where its SQLite store goes)

Run by `bench/load_service.py` with the same uvicorn settings as `medpolicy serve` (no access log,
the garbage collector's long-lived objects frozen). It has no middleware, no authentication and no
decision. Each endpoint does the least a service that records what it is sent must do:

- ``POST /bare/determinations``: parse the same JSON body (orjson) and commit one row holding its
  case to the same store, `medpolicy.store.Store` on SQLite (WAL, ``synchronous=FULL``, the same
  group commit), then answer 201 with the row's id;
- ``POST /bare/order-sign``: the same, after checking the bearer JWT's signature, issuer, audience
  and expiry with PyJWT (the key from ``MEDPOLICY_CDS_CLIENTS``, as the real service gets it): a CDS
  service cannot skip that check, so the baseline does not either.

What medpolicy's endpoints add over these (validation, decision, rendering, middleware, replay
protection) is what the ratio in `load_service.py` measures.
"""

from __future__ import annotations

import asyncio
import gc
import json
import os
import sys
from pathlib import Path
from typing import Any

import jwt
import orjson
import uvicorn
from fastapi import FastAPI, Request, Response

from medpolicy.service.run import LOG_CONFIG
from medpolicy.store import Store


def create_bare_app() -> FastAPI:
    data_dir = Path(os.environ["MEDPOLICY_DATA_DIR"])
    store = Store.open(f"sqlite:///{data_dir / 'bare.db'}", sqlite_synchronous="FULL")
    keys: dict[str, tuple[str, Any]] = {}  # kid -> (issuer, public key)
    for iss, conf in json.loads(os.environ.get("MEDPOLICY_CDS_CLIENTS", "{}")).items():
        for jwk in conf.get("jwks", {}).get("keys", []):
            keys[jwk["kid"]] = (iss, jwt.PyJWK(jwk).key)
    base = os.environ.get("MEDPOLICY_CDS_BASE_URL", "")
    app = FastAPI(title="bare baseline")

    async def commit(case: Any) -> Response:
        record, committed = store.submit_determination(case, {"outcome": "stored"}, client_id="bare")
        await asyncio.wrap_future(committed)
        return Response(orjson.dumps({"id": record.id}), status_code=201, media_type="application/json")

    @app.post("/bare/determinations")
    async def determinations(request: Request) -> Response:
        body = orjson.loads(await request.body())
        return await commit(body["case"])

    @app.post("/bare/order-sign")
    async def order_sign(request: Request) -> Response:
        token = request.headers["authorization"].removeprefix("Bearer ")
        header = jwt.get_unverified_header(token)
        iss, key = keys[header["kid"]]
        jwt.decode(
            token,
            key,
            algorithms=[header["alg"]],
            audience=f"{base}/cds-services/medpolicy-crd-order-sign",
            issuer=iss,
            options={"require": ["exp", "iat", "jti"]},
        )
        body = orjson.loads(await request.body())
        return await commit(body["context"])

    return app


def main() -> None:
    app = create_bare_app()
    gc.collect()
    gc.freeze()
    uvicorn.run(
        app,
        host="127.0.0.1",
        port=int(sys.argv[1]),
        access_log=False,
        log_config=LOG_CONFIG,
        proxy_headers=False,
    )


if __name__ == "__main__":
    main()
