"""The verify probe's token filter (roles/wsnotify/filter_plugins/wsnotify_probe.py), via Ansible.

The token is minted inside ansible-playbook's own process from the JWT secret; it must be a
valid HS256 token for the probe user (checked here with an independent HMAC), and an empty
secret must fail with a message, not a traceback.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import time

from helpers.ansible_run import ROOT, TARGET_PYTHON, ansible_playbook

SECRET = "probe-filter-secret-0123456789abcdef"


def b64decode(part: str) -> bytes:
    return base64.urlsafe_b64decode(part + "=" * (-len(part) % 4))


def mint(tmp_path, secret: str, audience: str = "", issuer: str = ""):
    play = [
        {
            "hosts": "localhost",
            "gather_facts": False,
            "vars": {"ansible_python_interpreter": TARGET_PYTHON},
            "tasks": [
                {
                    "name": "mint",
                    "ansible.builtin.copy": {
                        "content": "{{ secret | wsnotify_probe_token(audience, issuer) }}",
                        "dest": str(tmp_path / "token"),
                        "mode": "0600",
                    },
                }
            ],
        }
    ]
    (tmp_path / "play.yml").write_text(json.dumps(play))
    variables = {"secret": secret, "audience": audience, "issuer": issuer}
    (tmp_path / "vars.json").write_text(json.dumps(variables))
    return ansible_playbook(
        *("-i", "localhost,", "-c", "local", str(tmp_path / "play.yml")),
        *("-e", f"@{tmp_path / 'vars.json'}"),
        env={"ANSIBLE_FILTER_PLUGINS": str(ROOT / "roles/wsnotify/filter_plugins")},
        timeout=120,
    )


def test_the_probe_token_is_a_valid_hs256_token_for_the_probe_user(tmp_path):
    run = mint(tmp_path, SECRET, audience="notify-web", issuer="notify-auth")
    assert run.rc == 0, run
    token = (tmp_path / "token").read_text()
    header, payload, signature = token.split(".")
    assert json.loads(b64decode(header)) == {"alg": "HS256", "typ": "JWT"}
    claims = json.loads(b64decode(payload))
    assert claims["sub"] == "verify-probe"
    assert (claims["aud"], claims["iss"]) == ("notify-web", "notify-auth")
    assert claims["exp"] - claims["iat"] == 300
    assert abs(claims["iat"] - time.time()) < 60
    mac = hmac.new(SECRET.encode(), f"{header}.{payload}".encode(), hashlib.sha256).digest()
    assert b64decode(signature) == mac


def test_without_audience_or_issuer_the_claims_have_neither(tmp_path):
    run = mint(tmp_path, SECRET)
    assert run.rc == 0, run
    claims = json.loads(b64decode((tmp_path / "token").read_text().split(".")[1]))
    assert "aud" not in claims and "iss" not in claims


def test_an_empty_secret_fails_with_a_message(tmp_path):
    run = mint(tmp_path, "")
    assert run.rc != 0
    assert "cannot mint the probe token: the JWT secret is empty" in run.out, run
    assert "Traceback" not in run.out
