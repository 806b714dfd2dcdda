# Copyright: (c) 2026, wsnotify maintainers
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Mint HS256 JWTs the way wsnotify verifies them, with the standard library only.

Target hosts have no PyJWT; a check given only the service's JWT_SECRET still needs a token
whose ``sub`` is the user to connect as. Importable by plain Python (no Ansible imports) and on
its own, from the module_utils directory (the controller-side mint in playbooks does that):
so it imports nothing from its siblings.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import time


def b64url_encode(data: bytes) -> str:
    """Base64url without padding (RFC 7515 2)."""
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode("ascii")


def _segment(obj: dict) -> str:
    return b64url_encode(json.dumps(obj, separators=(",", ":")).encode("utf-8"))


def encode_hs256(claims: dict, secret: str) -> str:
    """Sign ``claims`` (in the given order) with HMAC-SHA256; header {"alg":"HS256","typ":"JWT"}."""
    signing_input = _segment({"alg": "HS256", "typ": "JWT"}) + "." + _segment(claims)
    mac = hmac.new(secret.encode("utf-8"), signing_input.encode("ascii"), hashlib.sha256)
    return signing_input + "." + b64url_encode(mac.digest())


def mint_token(
    secret: str,
    subject: str,
    ttl: int = 300,
    audience: str | None = None,
    issuer: str | None = None,
    now: int | None = None,
) -> str:
    """A short-lived token for user ``subject`` (claims sub, iat, exp, and aud/iss when set)."""
    if not secret:
        raise ValueError("the JWT secret is empty")
    issued = int(time.time()) if now is None else now
    claims: dict = {"sub": str(subject), "iat": issued, "exp": issued + int(ttl)}
    if audience:
        claims["aud"] = audience
    if issuer:
        claims["iss"] = issuer
    return encode_hs256(claims, secret)
