"""The old system's tokens: NextAuth v4 session tokens minted by next-auth's own encode().

next-auth 4.24.15 comes from npm, pinned by tests/nextauth/package-lock.json; encode() is the
function the old system's Next.js app used (JWE, alg dir, enc A256GCM, HKDF-derived key).
"""

from __future__ import annotations

import base64
import json
import subprocess

import aiohttp
import pytest
from backends import free_port
from wsnotify_harness import (
    AUDIENCE,
    ISSUER,
    JWT_SECRET,
    ServiceProcess,
    connect,
    expect_close,
    get_json,
    receive_json,
    run,
    wsnotify_cmd,
)

from wsnotify.auth import AuthError, JwtSettings, nextauth_key, verify_token

PLAIN = JwtSettings(secret=JWT_SECRET, audience=None, issuer=None, leeway=30)
BY_USER_ID = JwtSettings(
    secret=JWT_SECRET, audience=None, issuer=None, leeway=30, user_claim=("user", "id")
)
BY_ID = JwtSettings(secret=JWT_SECRET, audience=None, issuer=None, leeway=30, user_claim=("id",))
SESSION = {"name": "Ada", "email": "ada@example.com", "picture": None, "sub": "user-7"}


@pytest.fixture(scope="module")
def tokens(nextauth_encode) -> dict[str, str]:
    """One call into node for every variant (each call costs ~0.3 s)."""
    items = {
        "session": ({**SESSION}, 3600),
        "nested": ({**SESSION, "user": {"id": 99, "role": "admin"}}, 3600),
        "id": ({"id": "legacy-5", "name": "x"}, 3600),
        "id_number": ({"id": 1234}, 3600),
        "expired": ({**SESSION}, -3600),
        "expired_within_leeway": ({**SESSION}, -10),
        "numeric_sub": ({"sub": 42}, 3600),
        "no_sub": ({"name": "nobody"}, 3600),
        "with_aud": ({**SESSION, "aud": AUDIENCE, "iss": ISSUER}, 3600),
    }
    minted = nextauth_encode([{"token": t, "maxAge": age} for t, age in items.values()])
    out = dict(zip(items, minted, strict=True))
    (out["other_secret"],) = nextauth_encode(
        [{"token": SESSION, "maxAge": 3600}], secret="another-secret-0123456789abcdef-0123456789"
    )
    return out


def _ours(token: str, settings: JwtSettings = PLAIN) -> str | None:
    try:
        return verify_token(token, settings)
    except AuthError:
        return None


def test_key_is_derived_as_next_auth_does():
    # HKDF-SHA256(secret, salt "", info "NextAuth.js Generated Encryption Key", 32 bytes);
    # the next-auth tokens below only decrypt with exactly this key.
    assert len(nextauth_key(JWT_SECRET)) == 32
    assert nextauth_key(JWT_SECRET) != nextauth_key(JWT_SECRET + "x")


def test_a_session_token_is_accepted_with_its_sub(tokens):
    assert tokens["session"].count(".") == 4
    header = json.loads(_b64(tokens["session"].split(".")[0]))
    assert header == {"alg": "dir", "enc": "A256GCM"}
    assert _ours(tokens["session"]) == "user-7"


def test_the_user_claim_is_configurable(tokens):
    assert _ours(tokens["nested"], BY_USER_ID) == "99"  # an integer id, converted
    assert _ours(tokens["id"], BY_ID) == "legacy-5"
    assert _ours(tokens["id_number"], BY_ID) == "1234"
    assert _ours(tokens["session"], BY_USER_ID) is None  # no user.id in it
    assert _ours(tokens["nested"], BY_ID) is None


def test_expired_tokens_are_refused_outside_the_leeway(tokens):
    assert _ours(tokens["expired"]) is None
    assert _ours(tokens["expired_within_leeway"]) == "user-7"
    with pytest.raises(AuthError, match="expired"):
        verify_token(tokens["expired"], PLAIN)


def test_sub_must_be_a_string_and_present(tokens):
    assert _ours(tokens["numeric_sub"]) is None
    assert _ours(tokens["no_sub"]) is None


def test_another_secret_is_refused(tokens):
    with pytest.raises(AuthError, match="decryption failed"):
        verify_token(tokens["other_secret"], PLAIN)


def _b64(segment: str) -> bytes:
    return base64.urlsafe_b64decode(segment + "=" * (-len(segment) % 4))


def test_every_tampered_segment_is_refused(tokens):
    token = tokens["session"]
    parts = token.split(".")
    checked = 0
    for index, part in enumerate(parts):
        if not part:
            # the empty "encrypted key" of alg dir: anything there is refused
            mutated = [*parts]
            mutated[index] = "AAAA"
            assert _ours(".".join(mutated)) is None
            checked += 1
            continue
        for position in range(len(part)):
            original = part[position]
            replacement = "A" if original != "A" else "B"
            mutated = [*parts]
            mutated[index] = part[:position] + replacement + part[position + 1 :]
            assert _ours(".".join(mutated)) is None, (index, position)
            checked += 1
    assert checked > 100


def test_other_jwe_shapes_are_refused(tokens):
    parts = tokens["session"].split(".")

    def with_header(header: dict) -> str:
        raw = base64.urlsafe_b64encode(json.dumps(header).encode()).rstrip(b"=").decode()
        return ".".join([raw, *parts[1:]])

    for header in (
        {"alg": "dir", "enc": "A128GCM"},
        {"alg": "A256KW", "enc": "A256GCM"},
        {"alg": "dir", "enc": "A256GCM", "zip": "DEF"},
        {"alg": "dir", "enc": "A256GCM", "crit": ["exp"]},
    ):
        assert _ours(with_header(header)) is None
    assert _ours(".".join(parts[:4])) is None  # four segments: neither JWS nor JWE


def test_next_auth_token_over_the_websocket_and_the_api(service, tokens):
    # The shared server requires aud and iss: a NextAuth token carrying both is accepted,
    # one without them is refused like any other token.
    async def scenario() -> tuple[dict, int | None]:
        async with aiohttp.ClientSession() as session:
            ws = await connect(session, service.ws_url, tokens["with_aud"])
            welcome = await receive_json(ws)
            await ws.close()
            refused = await connect(session, service.ws_url, tokens["session"])
            return welcome, await expect_close(refused)

    welcome, code = run(scenario())
    assert welcome == {"type": "welcome", "user_id": "user-7"}
    assert code == 4401
    status, _ = get_json(service.base, "/api/user/notifications", tokens["with_aud"])
    assert status == 200


def test_user_claim_setting_end_to_end(env, workdir, tokens):
    config = {**env, "JWT_USER_CLAIM": "user.id"}
    for name in ("JWT_AUDIENCE", "JWT_ISSUER"):
        config.pop(name)
    proc = ServiceProcess(config, free_port(), workdir).start()
    try:

        async def scenario() -> tuple[dict, int | None]:
            async with aiohttp.ClientSession() as session:
                ws = await session.ws_connect(proc.ws_url)
                await ws.send_str(json.dumps({"type": "auth", "token": tokens["nested"]}))
                welcome = await receive_json(ws)
                await ws.close()
                other = await session.ws_connect(proc.ws_url, params={"token": tokens["session"]})
                return welcome, await expect_close(other)

        welcome, code = run(scenario())
        assert welcome == {"type": "welcome", "user_id": "99"}
        assert code == 4401  # a session token without user.id
        # `wsnotify token` mints where JWT_USER_CLAIM points, so its tokens work too.
        minted = subprocess.run(
            wsnotify_cmd("token", "--user", "m1"),
            env=config,
            capture_output=True,
            text=True,
            check=True,
        ).stdout.strip()
        claims = json.loads(_b64(minted.split(".")[1]))
        assert claims["user"] == {"id": "m1"} and "sub" not in claims

        async def minted_ok() -> dict:
            async with aiohttp.ClientSession() as session:
                ws = await connect(session, proc.ws_url, minted)
                got = await receive_json(ws)
                await ws.close()
                return got

        assert run(minted_ok()) == {"type": "welcome", "user_id": "m1"}
    finally:
        proc.stop()
