"""module_utils/wsnotify_connection.py: the shared options, resolved once for both modules."""

from __future__ import annotations

import base64
import json

import pytest

from module_utils import ws_protocol as ws
from module_utils.wsnotify_connection import (
    CONNECTION_ARGUMENT_SPEC,
    Connection,
    connection_argument_spec,
)

SECRET = "a-test-secret-that-is-at-least-32-characters"


def params(**overrides) -> dict:
    """What AnsibleModule hands a module: every shared option, defaults applied."""
    values = {name: option.get("default") for name, option in CONNECTION_ARGUMENT_SPEC.items()}
    values["url"] = "ws://127.0.0.1:3002/ws"
    values.update(overrides)
    return values


def claims(token: str) -> dict:
    text = token.split(".")[1]
    return json.loads(base64.urlsafe_b64decode(text + "=" * (-len(text) % 4)))


def test_a_module_adds_its_own_options_but_redefines_none():
    spec = connection_argument_spec(hold=dict(type="float", default=0.5))
    assert set(spec) == set(CONNECTION_ARGUMENT_SPEC) | {"hold"}
    spec["url"]["required"] = False  # a copy: the shared spec is untouched
    assert CONNECTION_ARGUMENT_SPEC["url"]["required"] is True
    with pytest.raises(ValueError, match="timeout"):
        connection_argument_spec(timeout=dict(type="int"))
    assert {n for n, o in CONNECTION_ARGUMENT_SPEC.items() if o.get("no_log")} == {
        "token",
        "jwt_secret",
    }


def test_a_given_token_is_placed_where_token_location_says():
    header = Connection(params(token="t0k"))
    assert header.headers == {"Authorization": "Bearer t0k"} and not header.minted_token
    query = Connection(params(token="t0k", token_location="query", headers={"X-A": "1"}))
    assert query.resource == "/ws?token=t0k" and query.headers == {"X-A": "1"}
    assert query.url == "ws://127.0.0.1:3002/ws"  # what modules return never shows the token
    message = Connection(params(token="t0k", token_location="message"))
    assert json.loads(message.first_message) == {"type": "auth", "token": "t0k"}


def test_a_token_is_minted_from_the_jwt_secret_for_user_id():
    c = Connection(
        params(jwt_secret=SECRET, user_id="probe", jwt_ttl=60, jwt_audience="app", jwt_issuer="i")
    )
    token = c.headers["Authorization"].removeprefix("Bearer ")
    got = claims(token)
    assert (got["sub"], got["aud"], got["iss"]) == ("probe", "app", "i")
    assert got["exp"] - got["iat"] == 60
    assert c.minted_token
    # the hint of a 4401 then points at the secret
    assert "JWT_SECRET" in c.hint(ws.ConnectionClosed(4401, "Unauthorized"))
    assert "JWT_SECRET" not in Connection(params(token="t")).hint(ws.ConnectionClosed(4401, ""))


@pytest.mark.parametrize(
    ("overrides", "match"),
    [
        ({"timeout": 0}, "timeout must be > 0"),
        ({"url": "http://h/ws"}, "invalid url or ca_path: url must start with ws://"),
        ({"url": "wss://h/ws", "ca_path": "/nonexistent/ca.pem"}, "invalid url or ca_path"),
        ({"token": "t", "headers": {"Authorization": "Basic x"}}, "set by the token option"),
        ({"headers": {"Sec-WebSocket-Key": "x"}}, "part of the handshake"),
        ({"jwt_secret": "", "user_id": "u"}, "JWT secret is empty"),  # an unset variable
    ],
)
def test_bad_options_are_refused_naming_the_option(overrides, match):
    with pytest.raises(ValueError, match=match):
        Connection(params(**overrides))


def test_hints_name_this_endpoint_or_the_one_given():
    c = Connection(params(url="wss://proxy.example/ws", unit="nginx", token="t"))
    refused = ws.ConnectFailed("refused", "proxy.example", 443, "refused")
    assert "proxy.example:443" in c.hint(refused) and "systemctl status nginx" in c.hint(refused)
    elsewhere = c.hint(refused, "127.0.0.1", 3002, False)
    assert "127.0.0.1:3002" in elsewhere and "systemctl status nginx" in elsewhere
