"""Authentication: JWT verification and minting, bearer parsing, publisher-token check.

Pure functions, no I/O: the WebSocket and REST layers call these and only decide how to
refuse (close 4401 vs. HTTP 401).

Why verification is not ``jwt.decode``: PyJWT 2.15 spends ~75 µs per HS256 decode (it
re-validates the key on every call and checks base64 character by character in Python), which
the benchmark measured as ~40% of a WebSocket handshake's CPU. ``verify_token`` below accepts
exactly one shape - a compact JWS, header ``alg`` HS256, no ``crit`` - and checks it with
``hmac``/``binascii``/``json`` in a few µs; the rules mirror PyJWT's (the tests compare both
on every claim variant and on every single-character mutation of a token). PyJWT still
mints tokens (``wsnotify token``).
"""

from __future__ import annotations

import binascii
import hashlib
import hmac
import json
import math
import time
from dataclasses import dataclass, field
from typing import Any

import jwt

from .config import Config
from .protocol import ValidationError, parse_user_id

ALGORITHM = "HS256"  # The only accepted algorithm: "none" and asymmetric confusion are refused.
MAX_TOKEN_LENGTH = 8192

_TO_STD_ALPHABET = bytes.maketrans(b"-_", b"+/")
_TO_URL_ALPHABET = bytes.maketrans(b"+/", b"-_")


class AuthError(Exception):
    """The token is unusable; the message says why (for debug logs, never sent to clients)."""


@dataclass(frozen=True)
class JwtSettings:
    """What verification needs, extracted once so the hot path does no lookups."""

    secret: str = field(repr=False)
    audience: str | None
    issuer: str | None
    leeway: float
    # HMAC state with the key already absorbed; each verification works on a copy of it.
    mac: Any = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        object.__setattr__(self, "mac", hmac.new(self.secret.encode(), digestmod=hashlib.sha256))

    @classmethod
    def from_config(cls, config: Config) -> JwtSettings:
        return cls(
            secret=config.jwt_secret.reveal(),
            audience=config.jwt_audience,
            issuer=config.jwt_issuer,
            leeway=config.jwt_leeway,
        )


def _segment(text: str) -> bytes:
    """Strict base64url (RFC 7515 section 2): URL alphabet, no padding, canonical bits."""
    raw = text.encode("ascii")  # UnicodeEncodeError (a ValueError) on anything else
    if b"=" in raw or b"+" in raw or b"/" in raw:
        raise ValueError("not unpadded base64url")
    standard = raw.translate(_TO_STD_ALPHABET)
    decoded = binascii.a2b_base64(standard + b"=" * (-len(raw) % 4), strict_mode=True)
    # Only one encoding per value: no variants of a signature with different padding bits.
    if binascii.b2a_base64(decoded, newline=False).rstrip(b"=").translate(_TO_URL_ALPHABET) != raw:
        raise ValueError("non-canonical base64url")
    return decoded


def _reject_constant(name: str) -> Any:
    raise ValueError(f"{name} is not a number")  # NaN would make any time comparison false


# Built once: json.loads with keyword arguments constructs a decoder on every call.
_DECODER = json.JSONDecoder(parse_constant=_reject_constant)


def _object(raw: bytes) -> dict[str, Any]:
    value = _DECODER.decode(raw.decode("utf-8"))
    if not isinstance(value, dict):
        raise ValueError("not a JSON object")
    return value


def _number(value: Any) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool) and math.isfinite(value)


def verify_token(token: str, settings: JwtSettings, now: float | None = None) -> str:
    """Return the user id (``sub``) of a valid token or raise :class:`AuthError`.

    ``exp`` is required: a token that never expires cannot be revoked by waiting.
    """
    if not token or len(token) > MAX_TOKEN_LENGTH:
        raise AuthError("token missing or oversized")
    parts = token.split(".")
    if len(parts) != 3:
        raise AuthError("not a compact JWS (three dot-separated segments)")
    header_b64, payload_b64, signature_b64 = parts
    try:
        header = _object(_segment(header_b64))
        signature = _segment(signature_b64)
    except (ValueError, RecursionError, binascii.Error) as exc:
        raise AuthError(f"malformed header or signature: {exc}") from None
    if header.get("alg") != ALGORITHM:
        raise AuthError("alg must be HS256")
    if "crit" in header:
        raise AuthError("critical header extensions are not supported")
    mac = settings.mac.copy()
    mac.update(f"{header_b64}.{payload_b64}".encode("ascii"))
    if not hmac.compare_digest(mac.digest(), signature):
        raise AuthError("signature verification failed")
    try:
        claims = _object(_segment(payload_b64))
    except (ValueError, RecursionError, binascii.Error) as exc:
        raise AuthError(f"malformed payload: {exc}") from None
    _check_claims(claims, settings, time.time() if now is None else now)
    sub = claims.get("sub")
    if not isinstance(sub, str):  # RFC 7519: a string; numbers are not silently converted
        raise AuthError("sub claim must be a string")
    try:
        return parse_user_id(sub)
    except ValidationError as exc:
        raise AuthError(f"sub claim: {exc}") from None


def _check_claims(claims: dict[str, Any], settings: JwtSettings, now: float) -> None:
    """Time, audience and issuer rules, as PyJWT applies them (plus ``exp`` required)."""
    # NumericDate must be a JSON number here (PyJWT also takes numeric strings); like PyJWT,
    # fractions are truncated before comparing.
    leeway = settings.leeway
    exp = claims.get("exp")
    if not _number(exp):
        raise AuthError("exp claim missing or not a number")
    if int(exp) <= now - leeway:
        raise AuthError("token expired")
    for name in ("nbf", "iat"):
        if name in claims:
            value = claims[name]
            if not _number(value):
                raise AuthError(f"{name} claim must be a number")
            if int(value) > now + leeway:
                raise AuthError(f"{name} claim is in the future")
    if settings.audience is None:
        if claims.get("aud"):  # an empty aud counts as none, as in PyJWT
            raise AuthError("token has an audience but JWT_AUDIENCE is not set")
    else:
        aud = claims.get("aud")
        audiences = [aud] if isinstance(aud, str) else aud
        if not isinstance(audiences, list) or not all(isinstance(a, str) for a in audiences):
            raise AuthError("aud claim missing or invalid")
        if settings.audience not in audiences:
            raise AuthError("wrong audience")
    if settings.issuer is not None and claims.get("iss") != settings.issuer:
        raise AuthError("wrong or missing issuer")


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
