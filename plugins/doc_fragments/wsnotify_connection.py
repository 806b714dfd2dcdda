# Copyright: (c) 2026, wsnotify maintainers
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Documentation of the options both verification modules take (module_utils/
wsnotify_connection.py holds their argument spec; tests/test_module_docs.py compares the two)."""

from __future__ import annotations


class ModuleDocFragment:
    DOCUMENTATION = r"""
options:
  url:
    description:
      - The WebSocket URL, V(ws://host:port/path) or V(wss://host/path); wsnotify serves it on
        V(/ws), for example V(ws://127.0.0.1:3002/ws) or V(wss://host/ws) through nginx.
    type: str
    required: true
  headers:
    description:
      - Extra headers for the upgrade request. The handshake's own headers (C(Host),
        C(Upgrade), C(Connection), C(Sec-WebSocket-*)) cannot be overridden.
    type: dict
    default: {}
  origin:
    description:
      - Value of the C(Origin) header, as a browser on that site would send it.
    type: str
  token:
    description:
      - Bearer token (a JWT for wsnotify) to authenticate with. Never logged or returned.
      - Where it is sent is chosen by O(token_location). Mutually exclusive with O(jwt_secret).
    type: str
  token_location:
    description:
      - "V(header) sends C(Authorization: Bearer <token>)."
      - V(query) adds C(?token=<token>) to the request target (the returned RV(url) never shows it).
      - V(message) sends C({"type":"auth","token":"<token>"}) as the first message after the 101.
    type: str
    choices: [header, query, message]
    default: header
  jwt_secret:
    description:
      - The service's C(JWT_SECRET); the module mints a short-lived token for O(user_id) with it,
        on the target, with the Python standard library (HS256, claims C(sub), C(iat), C(exp),
        and C(aud)/C(iss) when set). Never logged or returned.
      - Keeps the secret off every command line - pass it here rather than minting a token
        with a command. Mutually exclusive with O(token).
    type: str
  user_id:
    description:
      - User a token minted from O(jwt_secret) names (its C(sub)). Required with O(jwt_secret).
    type: str
  jwt_ttl:
    description:
      - Lifetime in seconds of a minted token.
    type: int
    default: 300
  jwt_audience:
    description:
      - C(aud) claim of a minted token, when the service sets C(JWT_AUDIENCE).
    type: str
  jwt_issuer:
    description:
      - C(iss) claim of a minted token, when the service sets C(JWT_ISSUER).
    type: str
  validate_certs:
    description:
      - Verify the server certificate and host name of V(wss://) (and V(https://)) endpoints.
      - Set to V(false) only for a throwaway check; the TLS details are returned either way.
    type: bool
    default: true
  ca_path:
    description:
      - CA bundle file (or hashed directory) to trust instead of the system store, for example a
        self-signed or private-CA certificate.
    type: path
  timeout:
    description:
      - Seconds allowed for each step of the check (connecting plus the upgrade, then each
        wait the module describes).
    type: float
    default: 10
  unit:
    description:
      - The systemd unit serving O(url), named in hints (which service to inspect when nothing
        listens or a proxy cannot reach its upstream); V(nginx) for a URL through the proxy.
    type: str
    default: wsnotify
"""
