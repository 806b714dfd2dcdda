"""module_utils/wsnotify_jwt.py: the stdlib HS256 minting used when only JWT_SECRET is known."""

from __future__ import annotations

import base64
import json

import pytest
from helpers.wsserver import verify_jwt

from module_utils import wsnotify_jwt as jwt

SECRET = "a-test-secret-that-is-at-least-32-characters"


def segment(token: str, index: int) -> dict:
    """One JSON part of a JWT, decoded here (independently of the module)."""
    text = token.split(".")[index]
    return json.loads(base64.urlsafe_b64decode(text + "=" * (-len(text) % 4)))


def test_matches_the_published_hs256_example():
    # The widely published jwt.io example token for this header, payload and secret.
    token = jwt.encode_hs256(
        {"sub": "1234567890", "name": "John Doe", "iat": 1516239022}, "your-256-bit-secret"
    )
    assert token == (
        "eyJhbGciOiJIUzI1NiIsInR5cCI6IkpXVCJ9."
        "eyJzdWIiOiIxMjM0NTY3ODkwIiwibmFtZSI6IkpvaG4gRG9lIiwiaWF0IjoxNTE2MjM5MDIyfQ."
        "SflKxwRJSMeKKF2QT4fwpMeJf36POk6yJV_adQssw5c"
    )


def test_minted_claims_and_independent_verification():
    token = jwt.mint_token(SECRET, "42", ttl=60, audience="app", issuer="auth", now=1000)
    assert segment(token, 0) == {"alg": "HS256", "typ": "JWT"}
    assert segment(token, 1) == {"sub": "42", "iat": 1000, "exp": 1060, "aud": "app", "iss": "auth"}
    fresh = jwt.mint_token(SECRET, 42)
    assert verify_jwt(fresh, SECRET) == "42"  # the test server's own HMAC check
    assert verify_jwt(fresh, SECRET + "x") is None
    assert verify_jwt(token, SECRET) is None  # expired (iat 1000)


def test_errors_are_explicit():
    with pytest.raises(ValueError, match="empty"):
        jwt.mint_token("", "42")
    assert "=" not in jwt.b64url_encode(b"\xff\xfe")
