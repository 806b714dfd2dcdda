"""The host self-check (module_utils/ws_selfcheck.py) against the stand-in server on 127.0.0.1,
and its wheel (roles/selfcheck/files/build_checks_wheel.py) installed into a real venv."""

from __future__ import annotations

import json
import subprocess
import sys
import zipfile
from pathlib import Path

from helpers.ports import free_port

from module_utils import ws_selfcheck

ROOT = Path(__file__).resolve().parent.parent
BUILDER = ROOT / "roles/selfcheck/files/build_checks_wheel.py"


def run_selfcheck(tmp_path, monkeypatch, env: dict, *args: str) -> tuple[int, dict, str]:
    for name in ("JWT_SECRET", "NEXTAUTH_SECRET", "PUBLISH_TOKEN", "JWT_AUDIENCE", "JWT_ISSUER"):
        monkeypatch.delenv(name, raising=False)
    for name, value in env.items():
        monkeypatch.setenv(name, value)
    rc = ws_selfcheck.main([*args, "--state-dir", str(tmp_path), "--timeout", "3"])
    return (
        rc,
        json.loads((tmp_path / "last.json").read_text()),
        (tmp_path / "wsnotify_selfcheck.prom").read_text(),
    )


def test_a_working_service_passes_every_check_and_is_recorded(
    tmp_path, monkeypatch, make_ws_server, test_secrets, capsys
):
    good = make_ws_server()
    env = {"JWT_SECRET": test_secrets.jwt_secret, "PUBLISH_TOKEN": test_secrets.publish_token}
    rc, state, prom = run_selfcheck(
        tmp_path, monkeypatch, env, "--direct-url", f"ws://{good.base}/ws"
    )
    assert rc == 0, state
    assert set(state["checks"]) == {"direct_refused", "direct_welcome", "direct_roundtrip"}
    assert all(c["ok"] and c["last_success"] for c in state["checks"].values()), state
    assert 'wsnotify_selfcheck_up{check="direct_roundtrip"} 1' in prom
    assert "<6>direct_roundtrip ok" in capsys.readouterr().out


def test_a_proxy_without_the_service_checks_only_through_nginx(
    tmp_path, monkeypatch, make_ws_server, test_secrets
):
    """No --direct-url (a proxy-only host): the nginx target's checks and no direct ones. The
    stand-in answers plain ws here; through TLS is molecule/cluster's proxy."""
    good = make_ws_server()
    env = {"JWT_SECRET": test_secrets.jwt_secret, "PUBLISH_TOKEN": test_secrets.publish_token}
    rc, state, _ = run_selfcheck(tmp_path, monkeypatch, env, "--nginx-url", f"ws://{good.base}/ws")
    assert rc == 0, state
    assert set(state["checks"]) == {"nginx_refused", "nginx_welcome", "nginx_roundtrip"}


def test_nothing_to_check_is_a_usage_error(tmp_path, capsys):
    try:
        ws_selfcheck.main(["--state-dir", str(tmp_path)])
    except SystemExit as exc:
        assert exc.code == 2
    else:
        raise AssertionError("no url given, yet the self-check ran")
    assert "nothing to check: give --direct-url" in capsys.readouterr().err


def test_a_dead_port_gets_verifys_message_and_keeps_the_last_success(
    tmp_path, monkeypatch, make_ws_server, test_secrets, capsys
):
    good = make_ws_server()
    env = {"JWT_SECRET": test_secrets.jwt_secret, "PUBLISH_TOKEN": test_secrets.publish_token}
    run_selfcheck(tmp_path, monkeypatch, env, "--direct-url", f"ws://{good.base}/ws")
    port = free_port()
    rc, state, prom = run_selfcheck(
        tmp_path, monkeypatch, env, "--direct-url", f"ws://127.0.0.1:{port}/ws"
    )
    assert rc == 1
    refused = state["checks"]["direct_refused"]
    assert not refused["ok"]
    assert refused["message"].startswith(f"nothing is listening on 127.0.0.1:{port}: the service")
    assert refused["last_success"] is not None  # carried over from the run before
    assert 'wsnotify_selfcheck_up{check="direct_refused"} 0' in prom
    assert "<3>direct_refused FAILED: nothing is listening" in capsys.readouterr().out


def test_without_secrets_the_token_checks_fail_naming_the_environment_file(
    tmp_path, monkeypatch, make_ws_server
):
    good = make_ws_server()
    rc, state, _ = run_selfcheck(tmp_path, monkeypatch, {}, "--direct-url", f"ws://{good.base}/ws")
    assert rc == 1
    assert state["checks"]["direct_refused"]["ok"]
    assert "JWT_SECRET or PUBLISH_TOKEN is not in" in state["checks"]["direct_welcome"]["message"]


def test_a_missing_site_link_gets_the_message_of_nginx_sites_verify(
    tmp_path, monkeypatch, make_ws_server, test_secrets
):
    good = make_ws_server()
    env = {"JWT_SECRET": test_secrets.jwt_secret, "PUBLISH_TOKEN": test_secrets.publish_token}
    link = tmp_path / "sites-enabled-wsnotify"
    args = ("--direct-url", f"ws://{good.base}/ws", "--site-link", str(link))
    rc, state, _ = run_selfcheck(tmp_path, monkeypatch, env, *args)
    assert rc == 1
    assert state["checks"]["nginx_site_linked"]["message"].startswith(
        f"{link} is missing (or not a link)"
    )
    link.symlink_to(tmp_path)
    assert run_selfcheck(tmp_path, monkeypatch, env, *args)[0] == 0


def test_the_wheel_installs_as_a_package_with_the_selfcheck_command(tmp_path):
    built = json.loads(
        subprocess.check_output(
            [sys.executable, str(BUILDER), str(ROOT / "module_utils"), str(tmp_path)]
        )
    )
    again = json.loads(
        subprocess.check_output(
            [sys.executable, str(BUILDER), str(ROOT / "module_utils"), str(tmp_path)]
        )
    )
    assert built["built"] and not again["built"] and again["wheel"] == built["wheel"]
    names = zipfile.ZipFile(built["wheel"]).namelist()
    assert "wsnotify_checks/ws_diagnosis.py" in names and "wsnotify_checks/ws_selfcheck.py" in names
    venv = tmp_path / "venv"
    # As the role installs it on a host: a venv of its own, from the wheel only.
    subprocess.run([sys.executable, "-m", "venv", str(venv)], check=True)
    pip = [str(venv / "bin/pip"), "install", "-q", "--no-index", "--disable-pip-version-check"]
    subprocess.run([*pip, built["wheel"]], check=True)
    out = subprocess.run(
        [str(venv / "bin/wsnotify-selfcheck"), "--help"], capture_output=True, text=True
    )
    assert out.returncode == 0 and "--direct-url" in out.stdout, out.stderr
