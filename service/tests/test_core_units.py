"""Pure logic without sockets or servers: frames, parsing, tokens, the hub's fan-out rules."""

from __future__ import annotations

import base64
import hmac
import json
import os
import socket
import struct
import time
from datetime import UTC, datetime

import jwt
import pytest
from wsnotify_harness import AUDIENCE, ISSUER, JWT_SECRET, make_token

from wsnotify import protocol, rfc6455
from wsnotify.auth import (
    AuthError,
    JwtSettings,
    bearer_token,
    mint_token,
    publisher_allowed,
    verify_token,
)
from wsnotify.hub import Hub
from wsnotify.metrics import Metrics
from wsnotify.recovery import RESYNC_FRAME, Recovery
from wsnotify.systemd import Notifier

SETTINGS = JwtSettings(secret=JWT_SECRET, audience=AUDIENCE, issuer=ISSUER, leeway=30)


# ---- frames and envelopes ----


@pytest.mark.parametrize("size", [0, 1, 125, 126, 127, 65535, 65536, 200_000])
def test_text_frame_header_matches_rfc6455(size):
    payload = b"a" * size
    frame = rfc6455.encode_text_frame(payload)
    assert frame[0] == 0x81  # FIN + text opcode, no RSV bits (no compression)
    if size < 126:
        assert frame[1] == size and frame[2:] == payload
    elif size < 65536:
        assert frame[1] == 126 and struct.unpack("!H", frame[2:4])[0] == size
        assert frame[4:] == payload
    else:
        assert frame[1] == 127 and struct.unpack("!Q", frame[2:10])[0] == size
        assert frame[10:] == payload


def test_envelope_round_trip_and_garbage():
    payload = protocol.encode_envelope(1234.5, '{"type":"notification"}')
    assert protocol.decode_envelope(payload) == (1234.5, b'{"type":"notification"}')
    assert protocol.decode_envelope(b"no-newline") == (None, b"no-newline")
    assert protocol.decode_envelope(b"abc\n{}") == (None, b"abc\n{}")
    assert protocol.seconds_since(None, 5.0) is None
    assert protocol.seconds_since(6.0, 5.0) is None  # clock skew: no negative latency
    assert protocol.seconds_since(4.0, 5.0) == 1.0


def test_channels():
    assert protocol.user_channel("42") == "wsnotify:user:42"
    assert protocol.user_from_channel("wsnotify:user:a:b") == "a:b"
    assert protocol.user_from_channel(protocol.BROADCAST_CHANNEL) is None


def test_notification_formats():
    from datetime import UTC, datetime

    n = protocol.Notification(7, None, "t", "b", {"x": 1}, datetime(2026, 1, 2, tzinfo=UTC))
    assert n.to_api() == {
        "id": 7,
        "user_id": None,
        "title": "t",
        "body": "b",
        "data": {"x": 1},
        "created_at": "2026-01-02T00:00:00+00:00",
    }
    assert n.to_frame_json() == (
        '{"type":"notification","id":7,"user_id":null,"title":"t","body":"b",'
        '"data":{"x":1},"created_at":"2026-01-02T00:00:00+00:00"}'
    )
    assert protocol.welcome("42") == '{"type":"welcome","user_id":"42"}'
    for user in ('quote"back\\slash', "é€😀", "tab\tnewline\n"):  # the same as a generic encoder
        assert json.loads(protocol.welcome(user)) == {"type": "welcome", "user_id": user}


def test_pong_format():
    assert protocol.pong("a") == '{"type":"pong","id":"a"}'
    assert protocol.pong(7) == '{"type":"pong","id":7}'
    assert protocol.pong(None) == '{"type":"pong","id":null}'
    for ping_id in ('quote"back\\slash', "é€😀", "tab\tnewline\n", -(2**53) + 1, 0, ""):
        assert json.loads(protocol.pong(ping_id)) == {"type": "pong", "id": ping_id}


# ---- client input ----


def test_parse_client_messages():
    assert protocol.parse_client_message('{"type":"auth","token":"t"}') == protocol.AuthMessage("t")
    assert protocol.parse_client_message('{"type":"ack","ids":[3,1,3]}') == protocol.AckMessage(
        (3, 1)
    )
    for bad in ("", "[]", '{"type":"auth"}', '{"type":"x"}', '{"type":"ack","ids":[-1]}'):
        with pytest.raises(protocol.ValidationError):
            protocol.parse_client_message(bad)

    parse = protocol.parse_client_message
    assert parse('{"type":"ping","id":"a"}') == protocol.PingMessage("a")
    assert parse('{"type":"ping","id":7}') == protocol.PingMessage(7)
    assert parse('{"type":"ping"}') == protocol.PingMessage(None)
    assert parse(json.dumps({"type": "ping", "id": "x" * 64})) == protocol.PingMessage("x" * 64)
    for edge in (2**53 - 1, -(2**53) + 1):
        assert parse(json.dumps({"type": "ping", "id": edge})) == protocol.PingMessage(edge)
    assert parse(r'{"type":"ping","id":"\u00e9\ud83d\ude00"}') == protocol.PingMessage("é😀")
    # Present but not a short string or a safe integer (null included): the message is invalid.
    for bad_id in ([1], True, False, "x" * 65, 2**53, -(2**53), None, 1.5, 7.0, {"a": 1}):
        with pytest.raises(protocol.ValidationError):
            parse(json.dumps({"type": "ping", "id": bad_id}))
    with pytest.raises(protocol.ValidationError):  # a lone surrogate cannot be echoed as UTF-8
        parse(r'{"type":"ping","id":"\ud800"}')


def test_parse_publish_accepts_integer_user_ids_from_old_clients():
    request = protocol.parse_publish(b'{"user_id":42,"title":"t"}')
    assert request == protocol.PublishRequest(user_id="42", title="t", body="", data={})
    assert protocol.parse_publish(b'{"broadcast":true,"title":"t","data":null}').user_id is None


def test_parse_list_query_defaults_and_bounds():
    assert protocol.parse_list_query({}) == protocol.ListQuery(False, 0, 50)
    assert protocol.parse_list_query({"unread": "TRUE", "limit": "100", "after_id": "9"}) == (
        protocol.ListQuery(True, 9, 100)
    )


def test_after_id_parsing():
    assert protocol.parse_after_id("0") == 0
    assert protocol.parse_after_id(7) == 7
    assert protocol.parse_after_id(str(protocol.MAX_ID)) == protocol.MAX_ID
    for bad in ("", "-1", "+1", " 1", "1_0", "\u0661", "1.0", -1, 1.0, True, None, [1], 2**63):
        with pytest.raises(protocol.BadAfterId, match="after_id must be a non-negative integer"):
            protocol.parse_after_id(bad)
    message = protocol.parse_client_message('{"type":"auth","token":"t","after_id":12}')
    assert message == protocol.AuthMessage("t", 12)
    with pytest.raises(protocol.BadAfterId):
        protocol.parse_client_message('{"type":"auth","token":"t","after_id":-3}')


# ---- recovery ----


def _note(nid: int, user: str | None = "u") -> protocol.Notification:
    return protocol.Notification(nid, user, f"t{nid}", "", {}, datetime(2026, 12, 1, tzinfo=UTC))


def _frames(data: bytes) -> list[dict]:
    """Decode the unmasked server frames of a replay (all short text frames)."""
    messages, rest = [], data
    while rest:
        length = rest[1] & 0x7F
        start = 2
        if length == 126:
            length, start = struct.unpack("!H", rest[2:4])[0], 4
        messages.append(json.loads(rest[start : start + length]))
        rest = rest[start + length :]
    return messages


def test_frame_notification_id_reads_the_ready_json():
    assert protocol.frame_notification_id(_note(123).to_frame_json().encode()) == 123
    assert protocol.frame_notification_id(protocol.RESYNC.encode()) is None
    assert protocol.frame_notification_id(b'{"type":"notification","id":x}') is None


def test_recovery_replays_then_held_without_duplicates_or_old_ids():
    recovery = Recovery("u", after_id=10)
    for nid in (12, 9, 14, 11):  # 12 also replayed, 9 at or below the cursor, 11 committed late
        payload = _note(nid).to_frame_json().encode()
        recovery.hold(protocol.frame_notification_id(payload), rfc6455.encode_text_frame(payload))
    recovery.resync = True
    assert recovery.is_new(13)  # before the replay, only the cursor counts
    replay = recovery.finish([_note(12), _note(13)], limit=5, max_bytes=1 << 20)
    messages = _frames(replay.data)
    assert [m.get("id") for m in messages] == [12, 13, None, 14, 11, None]
    assert messages[2] == {"type": "recovered", "count": 2, "last_id": 13, "complete": True}
    assert replay.data.endswith(RESYNC_FRAME)
    assert (replay.replayed, replay.held, replay.duplicates) == (2, 2, 2)
    # Settling: a late live copy of a replayed one is not new; later ones and other kinds are.
    assert [recovery.is_new(n) for n in (13, 12, 10, 11, 15, None)] == [
        False, False, False, True, True, True
    ]  # fmt: skip


def test_recovery_stops_at_the_limit_and_at_the_byte_budget():
    rows = [_note(n) for n in range(11, 15)]
    by_count = Recovery("u", 10).finish(rows, limit=3, max_bytes=1 << 20)
    assert _frames(by_count.data)[-1] == {
        "type": "recovered", "count": 3, "last_id": 13, "complete": False
    }  # fmt: skip
    one = len(rfc6455.encode_text_frame(rows[0].to_frame_json().encode()))
    by_bytes = Recovery("u", 10).finish(rows[:3], limit=3, max_bytes=2 * one)
    assert [m.get("id") for m in _frames(by_bytes.data)] == [11, 12, None]
    assert not by_bytes.complete
    nothing = Recovery("u", 99).finish([], limit=3, max_bytes=10)
    assert _frames(nothing.data) == [
        {"type": "recovered", "count": 0, "last_id": 99, "complete": True}
    ]


# ---- tokens ----


def test_verify_and_mint_round_trip():
    assert verify_token(mint_token("u1", 60, SETTINGS), SETTINGS) == "u1"
    assert verify_token(make_token("u2"), SETTINGS) == "u2"


def test_leeway_accepts_recently_expired_tokens_only():
    assert verify_token(make_token(ttl=-10), SETTINGS) == "42"
    with pytest.raises(AuthError):
        verify_token(make_token(ttl=-60), SETTINGS)


def test_token_without_exp_is_refused():
    token = jwt.encode(
        {"sub": "1", "aud": AUDIENCE, "iss": ISSUER, "iat": int(time.time())}, JWT_SECRET
    )
    with pytest.raises(AuthError):
        verify_token(token, SETTINGS)


def test_no_audience_configured_refuses_tokens_that_carry_one():
    plain = JwtSettings(secret=JWT_SECRET, audience=None, issuer=None, leeway=0)
    assert verify_token(make_token(aud=None, iss=None), plain) == "42"
    with pytest.raises(AuthError):
        verify_token(make_token(), plain)


def test_oversized_sub_is_refused():
    with pytest.raises(AuthError):
        verify_token(make_token("x" * 129), SETTINGS)


@pytest.mark.parametrize(
    "header,expected",
    [(None, None), ("", None), ("Bearer abc", "abc"), ("bearer  abc ", "abc"),
     ("Basic abc", None), ("Bearer", None), ("Bearer ", None)],
)  # fmt: skip
def test_bearer_parsing(header, expected):
    assert bearer_token(header) == expected


def test_publisher_check():
    token = "p" * 40
    assert publisher_allowed(f"Bearer {token}", token)
    assert not publisher_allowed(f"Bearer {token}x", token)
    assert not publisher_allowed(None, token)
    assert not publisher_allowed("Bearer ", token)


# ---- hub ----


class FakeTransport:
    def __init__(self, buffered: int = 0) -> None:
        self.buffered = buffered
        self.written: list[bytes] = []

    def write(self, data: bytes) -> None:
        self.written.append(data)

    def get_write_buffer_size(self) -> int:
        return self.buffered


class FakeMember:
    """What the hub sees of a connection."""

    def __init__(self, user_id: str, transport: FakeTransport) -> None:
        self.user_id = user_id
        self.transport = transport
        self.closing = False
        self.closed_with: list[int] = []

    def close(self, code: int, reason: bytes) -> None:
        self.closed_with.append(code)


def _hub(limit: int = 1000, per_user: int = 3) -> tuple[Hub, list[FakeMember], Metrics]:
    dropped: list[FakeMember] = []
    metrics = Metrics()
    hub = Hub(
        send_buffer_limit=limit,
        max_connections_per_user=per_user,
        metrics=metrics,
        on_drop=dropped.append,  # type: ignore[arg-type]
    )
    return hub, dropped, metrics


def _conn(user: str, transport: FakeTransport | None = None) -> FakeMember:
    return FakeMember(user, transport or FakeTransport())


def test_fanout_skips_and_drops_a_client_over_its_buffer():
    hub, dropped, metrics = _hub(limit=1000)
    fast = [_conn("a") for _ in range(3)]
    slow = _conn("b", FakeTransport(buffered=990))
    for conn in [*fast, slow]:
        assert hub.add(conn)
    frame = b"x" * 20
    assert hub.deliver_all(frame) == 3
    assert all(c.transport.written == [frame] for c in fast)
    assert slow.transport.written == [] and dropped == [slow] and slow.closing
    # Once dropped it is never written to again, and never dropped twice.
    assert hub.deliver_all(frame) == 3
    assert dropped == [slow]
    assert metrics.slow_drops._value.get() == 1
    assert metrics.deliveries._value.get() == 6


def test_fanout_writes_when_exactly_at_limit():
    hub, dropped, _ = _hub(limit=1000)
    conn = _conn("a", FakeTransport(buffered=980))
    hub.add(conn)
    assert hub.deliver_user("a", b"x" * 20) == 1 and not dropped


def test_fanout_skips_closing_members_and_survives_write_errors():
    hub, dropped, _ = _hub()

    class Broken(FakeTransport):
        def write(self, data: bytes) -> None:
            raise RuntimeError("transport gone")

    closing = _conn("a")
    closing.closing = True
    broken = _conn("a", Broken())
    ok = _conn("a")
    for conn in (closing, broken, ok):
        hub.add(conn)
    assert hub.deliver_user("a", b"m") == 1
    assert closing.transport.written == [] and broken.closing and not dropped
    assert hub.deliver_user("a", b"m") == 1  # the broken one is skipped from now on


def test_user_isolation_and_limits_in_the_hub():
    hub, _, metrics = _hub(per_user=2)
    a1, a2, a3, b1 = _conn("a"), _conn("a"), _conn("a"), _conn("b")
    assert hub.add(a1) and hub.add(a2) and not hub.add(a3) and hub.add(b1)
    assert hub.deliver_user("a", b"for-a") == 2
    assert b1.transport.written == [] and a3.transport.written == []
    assert hub.deliver_user("nobody", b"x") == 0
    hub.remove(a1)
    hub.remove(a1)  # idempotent
    assert hub.add(a3) and len(hub) == 3
    assert metrics.registry.get_sample_value("wsnotify_connections") == 3
    assert hub.deliver_user("a", b"again") == 2
    assert a2.transport.written == [b"for-a", b"again"] and a3.transport.written == [b"again"]


def test_a_single_connection_per_user_is_stored_without_a_set():
    hub, _, _ = _hub(per_user=1)
    one, two = _conn("solo"), _conn("solo")
    assert hub.add(one) and not hub.add(two)
    assert hub._by_user["solo"] is one  # no set while a user has one connection
    hub.remove(one)
    assert "solo" not in hub._by_user and hub.add(two)
    hub2, _, _ = _hub(per_user=3)
    a, b = _conn("u"), _conn("u")
    hub2.add(a)
    hub2.add(b)
    assert hub2._by_user["u"] == {a, b}
    hub2.remove(a)
    assert hub2._by_user["u"] is b  # back to the bare connection
    assert sorted(map(id, hub2)) == [id(b)]


# ---- systemd ----


def test_notifier_sends_datagrams_and_is_a_noop_without_socket(tmp_path):
    assert not Notifier(None).notify("READY=1")
    path = str(tmp_path / "notify")
    receiver = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
    receiver.bind(path)
    try:
        notifier = Notifier(path)
        assert notifier.notify("READY=1", "STATUS=ok")
        assert receiver.recv(100) == b"READY=1\nSTATUS=ok"
        notifier.close()
    finally:
        receiver.close()


def test_notifier_abstract_namespace():
    name = f"wsnotify-test-{os.getpid()}"
    receiver = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
    receiver.bind("\0" + name)
    try:
        assert Notifier("@" + name).notify("WATCHDOG=1")
        assert receiver.recv(100) == b"WATCHDOG=1"
    finally:
        receiver.close()


def test_notifier_reports_a_dead_socket():
    assert not Notifier("/nonexistent/dir/notify").notify("READY=1")


# ---- our HS256 verifier against PyJWT, the reference ----

_NOW = int(time.time())
_SECRET = JWT_SECRET
_WITH = JwtSettings(secret=_SECRET, audience="A", issuer="I", leeway=30)
_WITHOUT = JwtSettings(secret=_SECRET, audience=None, issuer=None, leeway=30)

# (name, claims, header overrides, algorithm, ours is deliberately stricter than PyJWT)
_BASE = {"sub": "u", "exp": _NOW + 86400, "aud": "A", "iss": "I", "iat": _NOW}
_VARIANTS: list[tuple[str, dict, dict, str, bool]] = [
    ("valid", {}, {}, "HS256", False),
    ("float exp", {"exp": _NOW + 300.5}, {}, "HS256", False),
    ("expired", {"exp": _NOW - 3600}, {}, "HS256", False),
    ("expired within leeway", {"exp": _NOW - 10}, {}, "HS256", False),
    ("expired just past leeway", {"exp": _NOW - 40}, {}, "HS256", False),
    ("exp missing", {"exp": None}, {}, "HS256", False),
    ("exp numeric string", {"exp": str(_NOW + 300)}, {}, "HS256", True),
    ("exp true", {"exp": True}, {}, "HS256", False),
    ("exp object", {"exp": {"a": 1}}, {}, "HS256", False),
    ("nbf future", {"nbf": _NOW + 3600}, {}, "HS256", False),
    ("nbf within leeway", {"nbf": _NOW + 10}, {}, "HS256", False),
    ("nbf past", {"nbf": _NOW - 10}, {}, "HS256", False),
    ("nbf string", {"nbf": "soon"}, {}, "HS256", False),
    ("iat future", {"iat": _NOW + 3600}, {}, "HS256", False),
    ("iat string", {"iat": "x"}, {}, "HS256", False),
    ("iat numeric string", {"iat": str(_NOW)}, {}, "HS256", True),
    ("aud list", {"aud": ["B", "A"]}, {}, "HS256", False),
    ("aud wrong", {"aud": "B"}, {}, "HS256", False),
    ("aud wrong list", {"aud": ["B"]}, {}, "HS256", False),
    ("aud missing", {"aud": None}, {}, "HS256", False),
    ("aud empty", {"aud": ""}, {}, "HS256", False),
    ("aud number", {"aud": 5}, {}, "HS256", False),
    ("aud list of numbers", {"aud": [5]}, {}, "HS256", False),
    ("iss wrong", {"iss": "J"}, {}, "HS256", False),
    ("iss missing", {"iss": None}, {}, "HS256", False),
    ("sub missing", {"sub": None}, {}, "HS256", False),
    ("sub number", {"sub": 42}, {}, "HS256", False),
    ("HS384", {}, {}, "HS384", False),
    ("HS512", {}, {}, "HS512", False),
    ("alg none", {}, {}, "none", False),
    ("kid header", {}, {"kid": "k1"}, "HS256", False),
    ("crit header", {}, {"crit": ["exp"]}, "HS256", False),
]


def _claims(overrides: dict) -> dict:
    claims = {**_BASE, **overrides}
    return {k: v for k, v in claims.items() if v is not None}


def _encode(claims: dict, headers: dict, algorithm: str) -> str:
    import warnings

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # short-key warnings for HS384/HS512
        key = None if algorithm == "none" else _SECRET
        return jwt.encode(claims, key, algorithm=algorithm, headers=headers or None)


def _pyjwt(token: str, settings: JwtSettings) -> str | None:
    required = ["sub", "exp"] + (["aud"] if settings.audience else [])
    required += ["iss"] if settings.issuer else []
    try:
        claims = jwt.decode(
            token,
            settings.secret,
            algorithms=["HS256"],
            audience=settings.audience,
            issuer=settings.issuer,
            leeway=settings.leeway,
            options={"require": required},
        )
    except jwt.PyJWTError:
        return None
    return claims["sub"] if isinstance(claims.get("sub"), str) else None


def _ours(token: str, settings: JwtSettings) -> str | None:
    try:
        return verify_token(token, settings)
    except AuthError:
        return None


@pytest.mark.parametrize("settings", [_WITH, _WITHOUT], ids=["aud+iss", "plain"])
@pytest.mark.parametrize("variant", _VARIANTS, ids=[v[0] for v in _VARIANTS])
def test_verifier_agrees_with_pyjwt(variant, settings):
    _, overrides, headers, algorithm, stricter = variant
    claims = _claims(overrides)
    if settings is _WITHOUT and "aud" in overrides:
        claims = {k: v for k, v in claims.items() if k not in ("iss",)}
    elif settings is _WITHOUT:
        claims = {k: v for k, v in claims.items() if k not in ("aud", "iss")}
    token = _encode(claims, headers, algorithm)
    ours, reference = _ours(token, settings), _pyjwt(token, settings)
    if stricter:
        assert ours is None, "deliberately stricter than PyJWT here"
    else:
        assert ours == reference


def test_verifier_agrees_with_pyjwt_on_every_single_character_mutation():
    token = _encode(_claims({}), {}, "HS256")
    assert _ours(token, _WITH) == "u"
    alphabet = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_.="
    checked = 0
    for index, original in enumerate(token):
        for replacement in (alphabet[(alphabet.index(original) + 1) % len(alphabet)], "=", "."):
            if replacement == original:
                continue
            mutated = token[:index] + replacement + token[index + 1 :]
            ours = _ours(mutated, _WITH)
            assert ours is None or ours == _pyjwt(mutated, _WITH), (index, replacement)
            checked += 1
    assert checked > 3 * 100


def test_verifier_refuses_what_pyjwt_would_not_even_parse():
    for token in ("", ".", "..", "a.b", "a.b.c.d", "é.é.é", "x" * 9000, "a..c"):
        assert _ours(token, _WITH) is None
    header = base64.urlsafe_b64encode(b'{"alg":"HS256"}').rstrip(b"=").decode()
    nan = base64.urlsafe_b64encode(b'{"sub":"u","exp":NaN}').rstrip(b"=").decode()
    signing = f"{header}.{nan}".encode()
    sig = base64.urlsafe_b64encode(hmac.new(_SECRET.encode(), signing, "sha256").digest())
    token = f"{header}.{nan}.{sig.rstrip(b'=').decode()}"
    assert _ours(token, _WITHOUT) is None  # NaN exp would never expire
    assert _ours(token + "=", _WITHOUT) is None  # padding is not base64url
