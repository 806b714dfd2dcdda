# Copyright: (c) 2026, wsnotify maintainers
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Turn a failed WebSocket check into the real cause an operator meets, and what to do.

``diagnose()`` is the one place every failure hint of the modules is written: connection, TLS
and handshake errors raised by ``websocket.py``/``ws_protocol.py``, close codes, the publisher's
answers, and the expectations a check can miss (``CheckFailed``). It works on the failures'
``kind`` and attributes (duck-typed), so it imports nothing and plain Python can test it. The
causes come from the outages this toolkit is meant to catch: a service not listening, an nginx
site without its WebSocket location, a proxy that drops the Upgrade headers, a handshake
rewritten in transit, certificates, a publisher or Redis fan-out that does not deliver.
"""

from __future__ import annotations

# OpenSSL X509_V_ERR_* codes seen in SSLCertVerificationError.verify_code.
_X509_EXPIRED = 10
_X509_NOT_YET_VALID = 9
_X509_SELF_SIGNED = 18
_X509_SELF_SIGNED_IN_CHAIN = 19
_X509_NO_LOCAL_ISSUER = 20
_X509_LEAF_NOT_VERIFIABLE = 21
_X509_HOSTNAME_MISMATCH = 62
_X509_IP_MISMATCH = 64

_NGINX_UPGRADE_SNIPPET = (
    "proxy_http_version 1.1; proxy_set_header Upgrade $http_upgrade; "
    'proxy_set_header Connection "upgrade";'
)

# Close codes a WebSocket server sends after the 101, and what they mean for this stack.
CLOSE_CODE_MEANINGS = {
    1000: "normal closure: the server ended the session on purpose",
    1001: "going away: the server is shutting down or restarting (a deploy in progress?)",
    1002: "protocol error: the server rejected our frames",
    1003: "unsupported data",
    1007: "invalid payload data",
    1008: "policy violation: typically a rejected Origin or a per-user connection limit",
    1009: "message too big",
    1011: "internal server error: read the service's journal",
    1012: "service restart",
    1013: "try again later: the server is at capacity or overloaded",
    4401: "Unauthorized: the token is missing, expired, signed with another secret, or has the "
    "wrong audience/issuer",
}


def _is_nginx(response) -> bool:
    server = (response.get("server") or "") if response is not None else ""
    return "nginx" in server.lower()


def _cert_summary(cert: dict | None) -> str:
    if not cert:
        return ""
    sans = ", ".join(cert.get("subject_alt_names") or []) or "none"
    return (
        f" The server presents: subject {cert.get('subject')!r}, issuer {cert.get('issuer')!r}, "
        f"names [{sans}], expires {cert.get('not_after')} "
        f"({cert.get('days_to_expiry')} days)."
    )


def explain_close(code: int | None, reason: str = "") -> str:
    """One line describing a close code (or an abrupt end without a close frame)."""
    if code is None:
        return (
            "the connection ended without a close frame: the server crashed, or a proxy cut it "
            "(nginx proxy_read_timeout, a load balancer idle timeout)"
        )
    meaning = CLOSE_CODE_MEANINGS.get(code)
    if meaning is None:
        meaning = "application-defined code" if code >= 4000 else "see RFC 6455 7.4.1"
    suffix = f" (reason {reason!r})" if reason else ""
    return f"close code {code}{suffix}: {meaning}"


def _status_hint(error, unit: str, host: str, port: int) -> str:
    response = error.response
    status = response.status
    nginx = _is_nginx(response)
    body = response.body_text() if hasattr(response, "body_text") else ""
    if status == 404:
        if nginx:
            return (
                "nginx answered 404 for the WebSocket path: the site is not enabled (its link in "
                "sites-enabled is missing, so another server block or the default site answers) "
                "or its `location /ws` block is missing. Check `nginx -T` for the server_name and "
                "the location, then `nginx -t && systemctl reload nginx`."
            )
        server = (response.get("server") or "unknown") if response is not None else "unknown"
        return (
            f"the server on {host}:{port} (Server: {server}) has no route for this path (404): "
            f"either the url's path is wrong (wsnotify serves the WebSocket on /ws) or another "
            f"program holds the port instead of {unit}. Find it with `ss -ltnp 'sport = :{port}'` "
            f"and inspect `systemctl status {unit}`."
        )
    if status == 400 and "plain HTTP request was sent to HTTPS port" in body:
        return "this port speaks TLS: use a wss:// url (nginx answered 400 to plain HTTP)."
    if status in (400, 426):
        if nginx:
            return (
                f"the upgrade reached the backend without its Upgrade/Connection headers and it "
                f"answered {status}: nginx does not forward them by default. In the `location /ws` "
                f"block add: {_NGINX_UPGRADE_SNIPPET}"
            )
        return (
            f"the server refused the upgrade request with {status}: a proxy in between may drop "
            "the Upgrade/Connection headers, or the server does not speak WebSocket on this path."
        )
    if status in (502, 504):
        who = "nginx" if nginx else "the proxy"
        return (
            f"{who} could not reach its upstream ({status}): the service behind it is down, "
            f"still starting, or proxy_pass points to the wrong address. Inspect "
            f"`systemctl status {unit}` and `journalctl -u {unit} -n 50`, and compare proxy_pass "
            "with WSNOTIFY_HOST/WSNOTIFY_PORT."
        )
    if at_capacity(response, None):
        return (
            f"nginx refused the upgrade with 503 and Retry-After: "
            f"{response.get('retry-after')} s: the site already holds nginx_site_max_clients open "
            "WebSockets (limit_conn). That is the clean refusal above capacity: clients retry "
            "after that delay. To admit more, raise nginx_site_max_clients (it sizes nginx's "
            "workers and open files and the service's cap) and deploy."
        )
    if status == 503:
        return (
            f"the service is unavailable (503): starting, overloaded or a dependency is down; "
            f"see `journalctl -u {unit} -n 50`."
        )
    if status in (401, 403):
        return (
            f"the upgrade was refused with HTTP {status} before any WebSocket frame: an auth or "
            "Origin check in front of the socket (is WSNOTIFY_ALLOWED_ORIGINS missing this "
            "origin?). wsnotify itself refuses tokens after the 101 with close code 4401."
        )
    if 300 <= status < 400:
        return (
            f"the server redirects ({status}) to {response.get('location')!r}: WebSocket clients "
            "do not follow redirects; point the url at the final address (often wss://)."
        )
    if status >= 500:
        return f"the server failed ({status}): read `journalctl -u {unit} -n 50`."
    return f"the server did not upgrade (HTTP {status}); the response body is in the result."


def at_capacity(response, close_code: int | None) -> bool:
    """Whether an answer is this stack's clean refusal above capacity: nginx's limit_conn 503
    with Retry-After (nginx_site_max_clients), or the service's close 1013 past its own cap."""
    if close_code == 1013:
        return True
    return (
        response is not None
        and response.status == 503
        and _is_nginx(response)
        and (response.get("retry-after") or "").strip().isdigit()
    )


def _tls_hint(error, host: str) -> str:
    code = getattr(error, "verify_code", None)
    cert = _cert_summary(getattr(error, "certificate", None))
    if code in (_X509_HOSTNAME_MISMATCH, _X509_IP_MISMATCH):
        return (
            f"the certificate is not valid for {host!r}: its names do not include it. Use a url "
            "with a name the certificate covers, or reissue it with that name in "
            f"subjectAltName.{cert}"
        )
    if code == _X509_SELF_SIGNED:
        return (
            "the certificate is self-signed and not trusted here: pass its certificate (or CA) "
            "as ca_path, or install it in the system trust store; validate_certs=false only for "
            f"a throwaway check.{cert}"
        )
    if code in (_X509_SELF_SIGNED_IN_CHAIN, _X509_NO_LOCAL_ISSUER, _X509_LEAF_NOT_VERIFIABLE):
        return (
            "the certificate chain does not lead to a trusted CA: the server may not send its "
            "intermediate certificates (use the full chain in ssl_certificate), or the CA is "
            f"private: pass it as ca_path.{cert}"
        )
    if code == _X509_EXPIRED:
        return f"the certificate has expired: renew it and reload nginx.{cert}"
    if code == _X509_NOT_YET_VALID:
        return f"the certificate is not valid yet: check the clock on this host (NTP).{cert}"
    detail = (getattr(error, "detail", "") or "").upper()
    if "WRONG_VERSION_NUMBER" in detail or "WRONG VERSION NUMBER" in detail:
        return "the port does not speak TLS: use ws:// for it, or the TLS port for wss://."
    if "EOF" in detail or "CONNECTION HAS BEEN CLOSED" in detail:
        return (
            "the server closed the connection during the TLS handshake: the port may not speak "
            "TLS (a plain service waiting for HTTP), or TLS is broken on the server side (see "
            "the nginx error log)."
        )
    if code is not None:
        return f"certificate verification failed ({error.detail}).{cert}"
    return (
        f"the TLS handshake failed ({getattr(error, 'detail', '')}): protocol or cipher mismatch, "
        "or a non-TLS service on this port."
    )


class CheckFailed(Exception):
    """An expectation of a check that did not hold although the transport worked.

    ``kind`` picks the hint in ``diagnose``; keyword arguments are its evidence:
    ``no_message`` (message_type, timeout), ``not_enforced``, ``publish_status`` (status, body,
    path), ``publish_invalid`` (detail), ``not_delivered`` (received: the messages seen instead).
    """

    def __init__(self, kind: str, message: str, **evidence) -> None:
        super().__init__(message)
        self.kind = kind
        self.evidence = evidence


def _publish_status_hint(status: int, body: str, path: str, unit: str) -> str:
    if status == 401:
        return (
            "the publisher refused publish_token: it must equal PUBLISH_TOKEN in the service's "
            "environment (EnvironmentFile of the unit)"
        )
    if status == 404:
        return (
            f"no publisher endpoint at {path}: check publish_url; behind nginx the site must "
            "proxy /api/ to the service"
        )
    if status == 400:
        return f"the service rejected the notification as invalid: {body[:500]}"
    if status in (502, 503, 504):
        return (
            f"the proxy could not reach the service ({status}): see `systemctl status {unit}` "
            f"and `journalctl -u {unit} -n 50`"
        )
    return f"unexpected answer from the publisher: {body[:500]}"


def _not_delivered_hint(received: list, unit: str) -> str:
    if any(isinstance(v, dict) and v.get("type") == "notification" for v in received):
        return (
            "notifications arrived, but none carried the probe's marker in data.marker or the "
            "body: the service (or something in between) alters or drops body/data, or this "
            "socket receives another user's notifications"
        )
    return (
        "the publisher accepted it but nothing was delivered: the service's Redis subscriber "
        "is down or the publishing node uses another Redis than this socket's node; see "
        f"`journalctl -u {unit} -n 50` and the /healthz endpoint"
    )


def _check_hint(failure: CheckFailed, unit: str) -> str:
    kind, ev = failure.kind, failure.evidence
    if kind == "no_message":
        return (
            f"no {ev['message_type']!r} message within {ev['timeout']}s: the server upgraded but "
            "did not confirm authentication (with token_location=message, the first message "
            'must be {"type":"auth","token":...})'
        )
    if kind == "not_enforced":
        return (
            "the server accepted the connection and kept it open: authentication is not "
            "enforced on this url (or the auth timeout is longer than the module's timeout)"
        )
    if kind == "publish_status":
        return _publish_status_hint(ev["status"], ev.get("body", ""), ev.get("path", ""), unit)
    if kind == "publish_invalid":
        return (
            f"the publisher endpoint did not answer with valid HTTP ({ev.get('detail')}): check "
            "that publish_url points at the service or its proxy"
        )
    if kind == "not_delivered":
        return _not_delivered_hint(ev.get("received", []), unit)
    if kind == "site_not_linked":
        return (
            f"{ev['path']} is missing (or not a link): nginx does not serve the site, so wss and "
            "the API fail for every client. Restore it with playbooks/site.yml (the nginx_site "
            "role links it)."
        )
    return str(failure)


def _close_hint(failure, minted_token: bool) -> str:
    code = getattr(failure, "code", None)
    hint = explain_close(code, getattr(failure, "reason", ""))
    if code == 1013:
        hint += (
            "; past its own cap the service closes new clients with 1013 (wsnotify_max_connections,"
            " derived from nginx_site_max_clients): the clean refusal above capacity, clients retry"
            " with backoff. Raise nginx_site_max_clients to admit more"
        )
    if code == 4401 and minted_token:
        hint += (
            "; a token minted from jwt_secret is refused when the secret differs from the "
            "service's JWT_SECRET or JWT_AUDIENCE/JWT_ISSUER are required"
        )
    return hint


def diagnose(
    failure,
    host: str,
    port: int,
    secure: bool,
    unit: str = "wsnotify",
    minted_token: bool = False,
) -> str:
    """The operator hint for a failed check against ``host:port``.

    ``failure`` is an error raised by websocket.py/ws_protocol.py (or the publisher request,
    classified the same way) or a CheckFailed; ``unit`` is the systemd unit to inspect and
    ``minted_token`` says the token was minted from jwt_secret (a 4401 then points at it).
    """
    kind = getattr(failure, "kind", "error")
    if kind == "refused":
        if secure or port in (80, 443):
            return (
                f"nothing is listening on {host}:{port}: the TLS proxy is down or bound elsewhere. "
                "Inspect `systemctl status nginx` and `ss -ltnp`."
            )
        return (
            f"nothing is listening on {host}:{port}: the service is not running or is bound to "
            f"another address. Inspect `systemctl status {unit}` and `journalctl -u {unit} -n 50`, "
            "and compare WSNOTIFY_HOST/WSNOTIFY_PORT with the url."
        )
    if kind == "timeout":
        return (
            f"no answer from {host}:{port} before the timeout: a firewall drops the packets, the "
            f"host is down, or the server accepted but never answered (overloaded {unit}?)."
        )
    if kind == "dns":
        return f"the host name {host!r} does not resolve on this machine: check DNS or /etc/hosts."
    if kind in ("unreachable", "reset"):
        return f"the network path to {host}:{port} failed ({getattr(failure, 'detail', '')})."
    if kind == "tls":
        return _tls_hint(failure, host)
    if kind == "status":
        return _status_hint(failure, unit, host, port)
    if kind == "invalid_101":
        if not getattr(failure, "accept_valid", True):
            return (
                "the server answered 101 but its Sec-WebSocket-Accept does not match the key we "
                "sent: something rewrote the handshake (a proxy that regenerates "
                "Sec-WebSocket-Key, a caching/buffering middlebox, or a broken server). Real "
                "browsers will refuse this connection."
            )
        return (
            "the server answered 101 but the response is not a valid WebSocket upgrade; a proxy "
            "in between may rewrite the Upgrade/Connection headers."
        )
    if kind == "closed":
        return _close_hint(failure, minted_token)
    if kind == "protocol":
        return f"the peer does not speak the WebSocket protocol correctly on this url ({failure})."
    if isinstance(failure, CheckFailed):
        return _check_hint(failure, unit)
    return str(failure)
