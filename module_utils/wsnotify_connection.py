# Copyright: (c) 2026, wsnotify maintainers
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""The options both verification modules take, and what they mean, written once.

``CONNECTION_ARGUMENT_SPEC`` is documented by the doc fragment
``plugins/doc_fragments/wsnotify_connection.py`` (tests compare the two). ``Connection`` turns
those options into what a check needs: the parsed URL, the TLS context, the token (given, or
minted from the service's JWT secret) placed where the service reads it, and the hint for a
failure at this endpoint. Standard library only, no Ansible imports.
"""

from __future__ import annotations

from .websocket import ClientConnection, connect, make_ssl_context
from .ws_diagnosis import diagnose
from .ws_protocol import (
    build_upgrade_request,
    generate_key,
    merge_headers,
    parse_ws_url,
    token_placement,
)
from .wsnotify_jwt import mint_token

CONNECTION_ARGUMENT_SPEC: dict[str, dict] = {
    "url": {"type": "str", "required": True},
    "headers": {"type": "dict", "default": {}},
    "origin": {"type": "str"},
    "token": {"type": "str", "no_log": True},
    "token_location": {
        "type": "str",
        "choices": ["header", "query", "message"],
        "default": "header",
    },
    "jwt_secret": {"type": "str", "no_log": True},
    "user_id": {"type": "str"},
    "jwt_ttl": {"type": "int", "default": 300},
    "jwt_audience": {"type": "str"},
    "jwt_issuer": {"type": "str"},
    "validate_certs": {"type": "bool", "default": True},
    "ca_path": {"type": "path"},
    "timeout": {"type": "float", "default": 10},
    "unit": {"type": "str", "default": "wsnotify"},
}
# Passed to AnsibleModule with the spec: a token is either given or minted for a user.
CONNECTION_MUTUALLY_EXCLUSIVE = [("token", "jwt_secret")]
CONNECTION_REQUIRED_BY = {"jwt_secret": "user_id"}


def connection_argument_spec(**own: dict) -> dict[str, dict]:
    """The shared options plus a module's own (a fresh copy; a name may be defined once)."""
    clash = set(own) & set(CONNECTION_ARGUMENT_SPEC)
    if clash:
        raise ValueError(f"options already in CONNECTION_ARGUMENT_SPEC: {sorted(clash)}")
    spec = {name: dict(option) for name, option in CONNECTION_ARGUMENT_SPEC.items()}
    spec.update(own)
    return spec


class Connection:
    """The shared options of one task, checked and resolved (raises ValueError or OSError with
    a message naming the option: a bad url, an unreadable ca_path, a header clash)."""

    def __init__(self, params: dict) -> None:
        if params["timeout"] <= 0:
            raise ValueError("timeout must be > 0")
        self.url = params["url"]
        try:
            self.target = parse_ws_url(self.url)
            self.ssl_context = make_ssl_context(params["validate_certs"], params["ca_path"])
        except (ValueError, OSError) as exc:
            raise ValueError(f"invalid url or ca_path: {exc}") from None
        self.timeout = params["timeout"]
        self.unit = params["unit"]
        self.origin = params["origin"]
        # Given but empty (an unset variable) is refused by mint_token, not taken as "no token".
        self.minted_token = params["jwt_secret"] is not None
        if self.minted_token:
            token = mint_token(
                params["jwt_secret"],
                params["user_id"],
                params["jwt_ttl"],
                params["jwt_audience"],
                params["jwt_issuer"],
            )
        else:
            token = params["token"]
        extra, self.resource, self.first_message = token_placement(
            self.target, token, params["token_location"]
        )
        self.headers = merge_headers(params["headers"], extra)
        # Headers that would break the handshake fail now, before any attempt connects.
        build_upgrade_request(self.target, generate_key(), self.origin, self.headers)

    def open(self, subprotocols: list[str] | None = None) -> ClientConnection:
        """Connect and upgrade (raises the WebSocketError of ``websocket.connect``)."""
        return connect(
            self.url,
            timeout=self.timeout,
            headers=self.headers,
            origin=self.origin,
            subprotocols=subprotocols,
            ssl_context=self.ssl_context if self.target.secure else None,
            resource=self.resource,
        )

    def authenticate(self, conn: ClientConnection) -> None:
        """With token_location=message, send the auth message the service expects first."""
        if self.first_message:
            conn.send_text(self.first_message, timeout=self.timeout)

    def hint(self, failure, host: str | None = None, port: int | None = None, secure=None) -> str:
        """``diagnose`` for a failure at this endpoint (or another one, e.g. the publisher)."""
        return diagnose(
            failure,
            host or self.target.host,
            port or self.target.port,
            self.target.secure if secure is None else secure,
            self.unit,
            self.minted_token,
        )
