"""Authentication: JWT verification and minting, bearer parsing, publisher-token check.

Pure functions, no I/O: the WebSocket and REST layers call these and only decide how to
refuse (close 4401 vs. HTTP 401).

Two token shapes are accepted, told apart by their segment count:

- an HS256 JWS (three segments), signed with ``JWT_SECRET``: the service's own tokens;
- a NextAuth.js v4 session token (five segments): a JWE with ``alg`` ``dir`` and ``enc``
  ``A256GCM`` whose key is HKDF-SHA256(secret, salt "", info "NextAuth.js Generated Encryption
  Key", 32 bytes), exactly as next-auth 4's ``jwt.encode()`` makes it (the old system's clients
  carry these). The secret is the same one (``NEXTAUTH_SECRET`` is its alias).

Both then go through the same claim rules (``exp`` required, leeway, ``aud``/``iss``) and the
same user-id claim (``JWT_USER_CLAIM``: ``sub``, ``id`` or a dotted path like ``user.id``).

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
import hmac
import json
import math
import time
from dataclasses import dataclass, field
from typing import Any

import jwt
from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from cryptography.hazmat.primitives.kdf.hkdf import HKDF

from .config import Config
from .protocol import MAX_USER_ID, ValidationError, parse_user_id

ALGORITHM = "HS256"  # The only accepted algorithm: "none" and asymmetric confusion are refused.
MAX_TOKEN_LENGTH = 8192
NEXTAUTH_INFO = b"NextAuth.js Generated Encryption Key"  # next-auth 4 jwt/index.js, salt ""

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
    user_claim: tuple[str, ...] = ("sub",)  # the path to the user id inside the claims
    key: bytes = field(init=False, repr=False, compare=False)  # the HS256 key, encoded once
    # AES-256-GCM with NextAuth's derived key, built once.
    jwe: AESGCM = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        object.__setattr__(self, "key", self.secret.encode())
        object.__setattr__(self, "jwe", AESGCM(nextauth_key(self.secret)))

    @classmethod
    def from_config(cls, config: Config) -> JwtSettings:
        return cls(
            secret=config.jwt_secret.reveal(),
            audience=config.jwt_audience,
            issuer=config.jwt_issuer,
            leeway=config.jwt_leeway,
            user_claim=config.jwt_user_claim,
        )


def nextauth_key(secret: str) -> bytes:
    """The A256GCM key next-auth 4 derives from its secret (``getDerivedEncryptionKey``)."""
    hkdf = HKDF(algorithm=hashes.SHA256(), length=32, salt=b"", info=NEXTAUTH_INFO)
    return hkdf.derive(secret.encode())


def _b64url(raw: bytes) -> bytes:
    return binascii.b2a_base64(raw, newline=False).rstrip(b"=").translate(_TO_URL_ALPHABET)


def _unsigned(text: str) -> bytes:
    """base64url (RFC 7515 section 2): URL alphabet, no padding. Enough for text a MAC
    tag covers as sent (a JWS payload): any other encoding of it fails that check anyway."""
    raw = text.encode("ascii")  # the token was checked to be ASCII
    if b"=" in raw or b"+" in raw or b"/" in raw:
        raise ValueError("not unpadded base64url")
    standard = raw.translate(_TO_STD_ALPHABET)
    return binascii.a2b_base64(standard + b"=" * (-len(raw) % 4), strict_mode=True)


def _segment(text: str) -> bytes:
    """Strict base64url and canonical bits: one encoding per value, for segments no check
    covers as text (e.g. a JWE's IV and tag)."""
    decoded = _unsigned(text)
    if _b64url(decoded) != text.encode("ascii"):
        raise ValueError("non-canonical base64url")
    return decoded


# Protected headers already checked, by their segment text: nearly every token of a deployment
# carries the same one, so its decoding and checks run once. Bounded: only accepted headers
# are kept, at most _MAX_HEADERS of them.
_ACCEPTED_HEADERS: dict[str, str] = {}
_MAX_HEADERS = 32


def _header(header_b64: str, kind: str) -> None:
    """Check the protected header of a ``kind`` ("jws" or "jwe") token, or raise AuthError."""
    if _ACCEPTED_HEADERS.get(header_b64) == kind:
        return
    try:
        header = _object(_segment(header_b64))
    except (ValueError, RecursionError, binascii.Error) as exc:
        raise AuthError(f"malformed header: {exc}") from None
    if kind == "jws" and header.get("alg") != ALGORITHM:
        raise AuthError("alg must be HS256")
    if kind == "jwe" and (header.get("alg") != "dir" or header.get("enc") != "A256GCM"):
        raise AuthError("a JWE must be alg dir, enc A256GCM (a NextAuth v4 session token)")
    if "crit" in header or "zip" in header:
        raise AuthError("crit and zip headers are not supported")
    if len(_ACCEPTED_HEADERS) < _MAX_HEADERS:
        _ACCEPTED_HEADERS[header_b64] = kind


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
    """Return the user id of a valid token (HS256 JWS or NextAuth JWE) or raise AuthError.

    ``exp`` is required: a token that never expires cannot be revoked by waiting.
    """
    if not token or len(token) > MAX_TOKEN_LENGTH or not token.isascii():
        raise AuthError("token missing, oversized or not ASCII")
    parts = token.split(".")
    if len(parts) == 3:
        claims = _verified_jws(parts, settings)
    elif len(parts) == 5:
        claims = _decrypted_jwe(parts, settings)
    else:
        raise AuthError("neither a compact JWS (3 segments) nor a compact JWE (5 segments)")
    _check_claims(claims, settings, time.time() if now is None else now)
    return _user_id(claims, settings.user_claim)


def _verified_jws(parts: list[str], settings: JwtSettings) -> dict[str, Any]:
    header_b64, payload_b64, signature_b64 = parts
    _header(header_b64, "jws")
    signed = f"{header_b64}.{payload_b64}".encode("ascii")
    # Compare encodings: only the canonical base64url of the right MAC matches.
    expected = _b64url(hmac.digest(settings.key, signed, "sha256"))
    if not hmac.compare_digest(expected, signature_b64.encode("ascii")):
        raise AuthError("signature verification failed")
    try:
        return _object(_unsigned(payload_b64))
    except (ValueError, RecursionError, binascii.Error) as exc:
        raise AuthError(f"malformed payload: {exc}") from None


def _decrypted_jwe(parts: list[str], settings: JwtSettings) -> dict[str, Any]:
    """RFC 7516 compact serialization, the one shape next-auth 4 produces."""
    header_b64, key_b64, iv_b64, ciphertext_b64, tag_b64 = parts
    _header(header_b64, "jwe")
    try:
        iv, ciphertext, tag = _segment(iv_b64), _segment(ciphertext_b64), _segment(tag_b64)
    except (ValueError, binascii.Error) as exc:
        raise AuthError(f"malformed JWE segment: {exc}") from None
    if key_b64 or len(iv) != 12 or len(tag) != 16:
        raise AuthError("malformed JWE: dir needs an empty key, a 96-bit IV, a 128-bit tag")
    try:
        # The protected header, as sent, is the additional authenticated data (RFC 7516 5.1).
        plaintext = settings.jwe.decrypt(iv, ciphertext + tag, header_b64.encode("ascii"))
    except InvalidTag:
        raise AuthError("JWE decryption failed (other secret, or tampered)") from None
    try:
        return _object(plaintext)
    except (ValueError, RecursionError) as exc:
        raise AuthError(f"malformed JWE payload: {exc}") from None


def _user_id(claims: dict[str, Any], path: tuple[str, ...]) -> str:
    """The user id at ``path``: ``sub`` must be a string (RFC 7519); another claim may also be
    an integer (converted), as the old system's ids were."""
    value: Any = claims
    for name in path:
        value = value.get(name) if isinstance(value, dict) else None
    # The common case, what parse_user_id would return as is: a short ASCII string without NUL.
    if (
        type(value) is str
        and 0 < len(value) <= MAX_USER_ID
        and value.isascii()
        and "\x00" not in value
    ):
        return value
    where = ".".join(path)
    if path == ("sub",) and not isinstance(value, str):
        raise AuthError("sub claim must be a string")
    if isinstance(value, bool) or not isinstance(value, str | int):
        raise AuthError(f"{where} claim missing, or neither a string nor an integer")
    try:
        return parse_user_id(value)
    except ValidationError as exc:
        raise AuthError(f"{where} claim: {exc}") from None


def _check_claims(claims: dict[str, Any], settings: JwtSettings, now: float) -> None:
    """Time, audience and issuer rules, as PyJWT applies them (plus ``exp`` required)."""
    # NumericDate must be a JSON number here (PyJWT also takes numeric strings); like PyJWT,
    # fractions are truncated before comparing.
    leeway = settings.leeway
    exp = claims.get("exp")
    if type(exp) is not int and not (type(exp) is float and math.isfinite(exp)):
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
    """Create an HS256 token for ``user_id`` valid for ``ttl`` seconds (ops and tests); the id
    goes where ``JWT_USER_CLAIM`` points, so the service accepts what it mints."""
    issued = int(time.time() if now is None else now)
    claims: dict[str, Any] = {"iat": issued, "exp": issued + ttl}
    *parents, leaf = settings.user_claim
    node = claims
    for name in parents:
        node = node.setdefault(name, {})
    node[leaf] = user_id
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
