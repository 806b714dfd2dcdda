"""Authentication: JWT verification and minting, bearer parsing, publisher-token check.

Pure functions, no I/O: the WebSocket and REST layers call these and only decide how to
refuse (close 4401 vs. HTTP 401).
"""

from __future__ import annotations

import hmac
import time
from dataclasses import dataclass

import jwt

from .config import Config
from .protocol import ValidationError, parse_user_id

ALGORITHM = "HS256"  # The only accepted algorithm: "none" and asymmetric confusion are refused.


class AuthError(Exception):
    """The token is unusable; the message says why (for debug logs, never sent to clients)."""


@dataclass(frozen=True)
class JwtSettings:
    """What verification needs, extracted once so the hot path does no lookups."""

    secret: str
    audience: str | None
    issuer: str | None
    leeway: float

    @classmethod
    def from_config(cls, config: Config) -> JwtSettings:
        return cls(
            secret=config.jwt_secret.reveal(),
            audience=config.jwt_audience,
            issuer=config.jwt_issuer,
            leeway=config.jwt_leeway,
        )


def verify_token(token: str, settings: JwtSettings) -> str:
    """Return the user id (``sub``) of a valid token or raise :class:`AuthError`.

    ``exp`` is required: a token that never expires cannot be revoked by waiting.
    """
    if not token or len(token) > 8192:
        raise AuthError("token missing or oversized")
    required = ["sub", "exp"]
    if settings.audience:
        required.append("aud")
    if settings.issuer:
        required.append("iss")
    try:
        claims = jwt.decode(
            token,
            settings.secret,
            algorithms=[ALGORITHM],
            audience=settings.audience,
            issuer=settings.issuer,
            leeway=settings.leeway,
            options={"require": required},
        )
    except jwt.PyJWTError as exc:
        raise AuthError(f"{type(exc).__name__}: {exc}") from None
    sub = claims.get("sub")
    if not isinstance(sub, str):  # RFC 7519: a string; numbers are not silently converted
        raise AuthError("sub claim must be a string")
    try:
        return parse_user_id(sub)
    except ValidationError as exc:
        raise AuthError(f"sub claim: {exc}") from None


def mint_token(user_id: str, ttl: int, settings: JwtSettings, now: float | None = None) -> str:
    """Create an HS256 token for ``user_id`` valid for ``ttl`` seconds (ops and tests)."""
    issued = int(time.time() if now is None else now)
    claims: dict[str, object] = {"sub": user_id, "iat": issued, "exp": issued + ttl}
    if settings.audience:
        claims["aud"] = settings.audience
    if settings.issuer:
        claims["iss"] = settings.issuer
    return jwt.encode(claims, settings.secret, algorithm=ALGORITHM)


def bearer_token(authorization: str | None) -> str | None:
    """The credential of an ``Authorization: Bearer <token>`` header, else None."""
    if not authorization:
        return None
    scheme, _, credential = authorization.strip().partition(" ")
    if scheme.lower() != "bearer":
        return None
    credential = credential.strip()
    return credential or None


def publisher_allowed(authorization: str | None, publish_token: str) -> bool:
    """Constant-time check of the publisher secret, so timing reveals nothing about it."""
    credential = bearer_token(authorization)
    if credential is None:
        return False
    return hmac.compare_digest(credential.encode(), publish_token.encode())
