"""A demo CDS Hooks client for `make run`, so CDS Hooks / CRD can be tried with curl on loopback.

The demo service trusts one client, issuer :data:`DEMO_ISSUER`, whose ES384 key pair is made on first
use and kept in the data folder (``demo-cds-client.pem``, readable by its owner only). The service
trusts the public half; ``medpolicy cds-token URL`` signs a fresh JWT for that URL with the private
half. A demo only: a real deployment configures its EHRs' keys (``MEDPOLICY_CDS_CLIENTS``) and signs
nothing itself.
"""

from __future__ import annotations

import json
import os
import time
import uuid
from pathlib import Path
from typing import Any

import jwt
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec

from medpolicy.interop.jwt_auth import TrustedClient

DEMO_ISSUER = "medpolicy-demo-ehr"
DEMO_KID = "demo-ehr-es384"
KEY_FILE = "demo-cds-client.pem"


def key_path(data_dir: Path) -> Path:
    return data_dir / KEY_FILE


def load_or_create_key(path: Path) -> ec.EllipticCurvePrivateKey:
    """The demo client's private key at ``path``, made (P-384, mode 0600) when there is none."""
    if path.exists():
        return load_key(path)
    key = ec.generate_private_key(ec.SECP384R1())
    pem = key.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    )
    path.parent.mkdir(parents=True, exist_ok=True)
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(fd, "wb") as out:
        out.write(pem)
    return key


def load_key(path: Path) -> ec.EllipticCurvePrivateKey:
    """Raises ``ValueError`` when the file is not a P-384 private key in PEM."""
    key = serialization.load_pem_private_key(path.read_bytes(), password=None)
    if not isinstance(key, ec.EllipticCurvePrivateKey) or not isinstance(key.curve, ec.SECP384R1):
        raise ValueError(f"{path} is not a P-384 (ES384) private key")
    return key


def trusted_client(key: ec.EllipticCurvePrivateKey) -> TrustedClient:
    """What the service trusts: the demo issuer with the public half of ``key``."""
    return TrustedClient(iss=DEMO_ISSUER, jwks=public_jwks(key))


def public_jwks(key: ec.EllipticCurvePrivateKey) -> dict[str, Any]:
    public: dict[str, Any] = json.loads(jwt.algorithms.ECAlgorithm.to_jwk(key.public_key()))
    public.update({"kid": DEMO_KID, "alg": "ES384", "use": "sig"})
    return {"keys": [public]}


def sign_token(key: ec.EllipticCurvePrivateKey, audience: str, *, lifetime: int = 300) -> str:
    """A CDS Hooks client JWT for a call to ``audience`` (the exact URL called), fresh ``jti``."""
    now = int(time.time())
    claims = {
        "iss": DEMO_ISSUER,
        "sub": "demo-ehr-user",
        "aud": audience,
        "iat": now,
        "exp": now + lifetime,
        "jti": str(uuid.uuid4()),
    }
    return jwt.encode(claims, key, algorithm="ES384", headers={"kid": DEMO_KID, "typ": "JWT"})
