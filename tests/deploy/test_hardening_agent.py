"""Issue #11 findings 4, 7 and 8 on the device agent: the camera URL and the token stay out of argv and
out of files other users can read, an abbreviated --token is refused, the agent's files are private,
and the health check waits for /healthz of the NEW release (the old process may still answer)."""

from __future__ import annotations

import http.server
import json
import subprocess
import threading

import pytest

from edgelite.deploy.agent.__main__ import handle
from edgelite.deploy.agent.health import wait_healthy
from edgelite.deploy.agent.layout import Layout
from tests.deploy.test_agent import call, mini_bundle, pyz  # noqa: F401  (pyz is a fixture)

URL = "rtsp://admin:hunter2@10.0.0.7:554/stream1"


def _device(tmp_path) -> Layout:
    lay = Layout(tmp_path / "dev")
    lay.ensure()
    (lay.bundles / "b1").mkdir()
    (lay.venvs / "e1").mkdir()
    (lay.venvs / "e1" / ".ready").touch()
    return lay


def test_the_camera_url_is_exported_not_in_argv_and_the_release_is_private(tmp_path):
    lay = _device(tmp_path)
    reply = handle({"command": "release", "dir": str(lay.root), "bundle": "b1", "env": "e1", "source": URL,
                    "http": "127.0.0.1:8080"})
    assert reply["ok"], reply
    rel_dir = lay.releases / reply["release"]
    run = rel_dir / "run"
    exec_line = next(line for line in run.read_text().splitlines() if line.startswith("exec "))
    assert "hunter2" not in exec_line and "--source" not in exec_line
    assert run.stat().st_mode & 0o777 == 0o700 and rel_dir.stat().st_mode & 0o777 == 0o700
    # what `edgelite run` finds in its environment: the source and the release id
    out = subprocess.run(["sh", "-c", "sed '/^exec /d' \"$1\" > \"$1.noexec\"; . \"$1.noexec\"; "
                          "echo \"$EDGELITE_SOURCE\"; echo \"$EDGELITE_RELEASE\"", "sh", str(run)],
                         capture_output=True, text=True)
    assert out.stdout.split() == [URL, reply["release"]], out.stderr


@pytest.mark.parametrize("flag", ["--tok", "--tok=s3cret", "--toke", "--to"])
def test_an_abbreviated_token_flag_is_refused(tmp_path, flag):
    lay = _device(tmp_path)
    args = f"{flag} s3cret" if "=" not in flag else flag
    reply = handle({"command": "release", "dir": str(lay.root), "bundle": "b1", "env": "e1", "source": "0",
                    "http": "127.0.0.1:8080", "run_args": args})
    assert not reply["ok"] and reply["exit_code"] == 2 and "--token" in reply["error"]
    assert "s3cret" not in reply["error"]
    assert not [p for p in lay.releases.iterdir() if not p.name.startswith(".")], "a release was written"


def test_the_agents_logs_and_files_are_private(pyz, tmp_path):  # noqa: F811
    d = tmp_path / "dev"
    lay = Layout(d)
    lay.ensure()
    mini_bundle(lay.bundles / "b1")
    (lay.venvs / "e1").mkdir()
    (lay.venvs / "e1" / ".ready").touch()
    assert call(pyz, {"command": "configure", "dir": str(d), "mode": "none", "user": "pi"}, tmp_path)[0] == 0
    code, reply = call(pyz, {"command": "release", "dir": str(d), "bundle": "b1", "env": "e1", "source": URL,
                             "http": "127.0.0.1:8080"}, tmp_path)
    assert code == 0, reply
    code, reply = call(pyz, {"command": "commit", "dir": str(d), "release": reply["release"], "no_service": True},
                       tmp_path)
    assert code == 0, reply
    assert lay.deploys_log.stat().st_mode & 0o777 == 0o600


class _Old(http.server.BaseHTTPRequestHandler):
    def do_GET(self):  # the previous release, still serving while systemd restarts with --no-block
        body = json.dumps({"status": "ok", "frames": 99, "release": "OLD"}).encode()
        self.send_response(200)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *a):
        pass


def test_the_health_check_waits_for_the_new_release(tmp_path):
    srv = http.server.ThreadingHTTPServer(("127.0.0.1", 0), _Old)
    threading.Thread(target=srv.serve_forever, daemon=True).start()
    try:
        lay = Layout(tmp_path / "dev")
        rel = {"id": "NEW", "http": f"127.0.0.1:{srv.server_address[1]}", "source": "0", "reports_release": True}
        ok, why, body = wait_healthy(lay, {"mode": "none"}, rel, timeout=2.0)
        assert not ok and "'OLD', not NEW" in why
        rel["id"] = "OLD"
        assert wait_healthy(lay, {"mode": "none"}, rel, timeout=2.0)[0]
    finally:
        srv.shutdown()
        srv.server_close()


def test_no_edgelite_parser_accepts_an_abbreviation():
    """`edgelite run --tok S` used to pass as --token; now every subcommand refuses a shortened option."""
    from edgelite.cli import build_parser

    parser = build_parser()
    sub = next(a for a in parser._actions if a.choices and "run" in a.choices)
    assert not parser.allow_abbrev and all(not p.allow_abbrev for p in sub.choices.values())
    with pytest.raises(SystemExit) as e:
        parser.parse_args(["run", "bundle", "--tok", "s3cret"])
    assert e.value.code == 2
    assert parser.parse_args(["run", "bundle", "--token", "s3cret"]).token == "s3cret"


def test_the_mqtt_password_goes_to_the_env_file_only_and_extras_are_plain_names(tmp_path):
    """The release request's mqtt_password lands in the 0600 env file as $EDGELITE_MQTT_PASSWORD (what `edgelite
    run --mqtt` reads), never in release.json or the run script; a venv request's extras are plain names (they
    become pip's `WHEEL[extra]` argument)."""
    from edgelite.device.outputs.mqtt import PASSWORD_ENV

    lay = _device(tmp_path)
    pw = 'mq"tt $pw`x'
    reply = handle({"command": "release", "dir": str(lay.root), "bundle": "b1", "env": "e1", "source": "0",
                    "http": "127.0.0.1:8080", "run_args": ["--mqtt", "mqtt://cam@b/x"], "mqtt_password": pw})
    assert reply["ok"], reply
    rel_dir = lay.releases / reply["release"]
    env = subprocess.run(["sh", "-c", f"set -a; . {rel_dir / 'env'}; printf %s \"${PASSWORD_ENV}\""],
                         capture_output=True, text=True, check=True).stdout
    assert env == pw and (rel_dir / "env").stat().st_mode & 0o777 == 0o600
    assert json.loads((rel_dir / "release.json").read_text())["mqtt_password"] is True
    assert pw not in (rel_dir / "release.json").read_text() and pw not in (rel_dir / "run").read_text()
    for bad in (["mqtt]; x"], "mqtt", [1], ["../x"]):
        r = handle({"command": "venv", "dir": str(lay.root), "env": "e2", "wheel": "w.whl", "extras": bad})
        assert not r["ok"] and r["exit_code"] == 2 and "extras: expected a list" in r["error"], r
