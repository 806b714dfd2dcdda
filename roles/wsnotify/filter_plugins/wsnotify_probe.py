"""Filter ``wsnotify_probe_token``: a short-lived HS256 token for the verification probe.

    token: "{{ wsnotify_jwt_secret | wsnotify_probe_token(audience, issuer) }}"

It is minted inside Ansible's own process on the controller, by the one HS256 implementation
the modules use (module_utils/wsnotify_jwt.py, found on the configured module_utils path): no
process is started, so the secret is on no command line, and no task is spent on it.
"""

from __future__ import annotations

import functools
import importlib.util
from pathlib import Path

from ansible import constants as C
from ansible.errors import AnsibleFilterError

SUBJECT = "verify-probe"
TTL = 300


@functools.cache
def _mint_token():
    for directory in C.DEFAULT_MODULE_UTILS_PATH:
        path = Path(directory) / "wsnotify_jwt.py"
        if path.is_file():
            spec = importlib.util.spec_from_file_location("wsnotify_jwt_controller", path)
            module = importlib.util.module_from_spec(spec)
            spec.loader.exec_module(module)
            return module.mint_token
    raise AnsibleFilterError(
        f"wsnotify_jwt.py is not on the module_utils path {C.DEFAULT_MODULE_UTILS_PATH}: "
        "run from the project root (its ansible.cfg sets module_utils)"
    )


def probe_token(secret: str, audience: str = "", issuer: str = "") -> str:
    """A token for the probe user, valid TTL seconds, with aud/iss when the service checks them."""
    try:
        return _mint_token()(
            str(secret), SUBJECT, ttl=TTL, audience=audience or None, issuer=issuer or None
        )
    except ValueError as exc:  # an empty secret: say so, never show it
        raise AnsibleFilterError(f"cannot mint the probe token: {exc}") from None


class FilterModule:
    def filters(self):
        return {"wsnotify_probe_token": probe_token}
