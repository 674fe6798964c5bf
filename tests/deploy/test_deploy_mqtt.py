"""Issue #22/#23: a service deployed with `--run-args '--mqtt URL'` publishes, against the loopback sshd rig and
a real mosquitto that requires a password (tests/device/mqttkit.py).

`deploy` installs paho-mqtt (edgelite's `mqtt` extra) into the device venv — with --offline from the
wheelhouse built for the device — and hands the password ($EDGELITE_MQTT_PASSWORD or --mqtt-password-file)
to the release's 0600 env file, the token's way: the password is in no `ps` line, no log, no file of the
deploy folder but that env file, not in release.json and not in `deploy --status --json`.
"""

from __future__ import annotations

import json
import os
import subprocess

import pytest

from tests.device.mqttkit import MOSQUITTO, PASSWORD, Broker, Subscriber

from .rig import free_port, wait_healthz

pytestmark = [pytest.mark.timeout(600),
              pytest.mark.skipif(MOSQUITTO is None, reason="needs mosquitto (apt install mosquitto)")]

DIR = "~/edgelite-mqtt"
PREFIX = "edgelite/deploytest"


@pytest.fixture(scope="module")
def broker(tmp_path_factory):
    b = Broker(tmp_path_factory.mktemp("mosquitto"), free_port()).start()
    yield b
    b.stop()


@pytest.fixture(scope="module")
def mqtt_dev(sshd, tiny_bundle, wheel, wheelhouse, video, broker):
    http = free_port()

    class Dev:
        device, port = sshd, http
        root = sshd.home / "edgelite-mqtt"

        def deploy(self, *extra, environ=None):
            args = ["--offline", "--source", str(video), "--http", f"127.0.0.1:{http}", "--wheel", str(wheel),
                    "--health-timeout", "60", "--print-every", "5",
                    "--run-args", f"--mqtt {broker.url(PREFIX)} --mqtt-every 5"]
            return sshd.cli(str(tiny_bundle), *args, *extra, directory=DIR, environ=environ)

        def current(self) -> str:
            return os.readlink(self.root / "current").split("/")[-1]

        def release(self) -> dict:
            return json.loads((self.root / "releases" / self.current() / "release.json").read_text())

    yield Dev()
    sshd.cli("--uninstall", directory=DIR)


def leaks(root, secret: str) -> list[str]:
    """Files under the deploy folder (its venvs, wheels and bundles aside) that hold `secret`, but the
    releases' env files."""
    out = []
    for path in root.rglob("*"):
        rel = path.relative_to(root)
        if rel.parts[0] in ("venvs", "wheels", "bundles") or not path.is_file() or path.is_symlink():
            continue
        if secret.encode() in path.read_bytes() and not (rel.parts[0] == "releases" and rel.name == "env"):
            out.append(str(rel))
    return out


def test_deployed_service_publishes_with_the_password_from_the_environment(mqtt_dev, broker):
    """--run-args '--mqtt URL' + $EDGELITE_MQTT_PASSWORD: paho-mqtt is installed from the --offline
    wheelhouse, the service authenticates (the broker takes no anonymous client) and publishes PREFIX/state;
    the password reaches no command line, log, status or file but the release's 0600 env file."""
    sub = Subscriber(broker.port, f"{PREFIX}/#")
    try:
        r = mqtt_dev.deploy("--json", environ={"EDGELITE_MQTT_PASSWORD": PASSWORD})
        assert r.returncode == 0, r.stdout[-4000:]
        assert "paho-mqtt 2.1.0" in r.stdout, r.stdout  # the venv's versions, as the install step reports them
        wait_healthz(mqtt_dev.port, timeout=60)
        states = sub.wait_for(lambda m: m[0] == f"{PREFIX}/state", timeout=60)
        assert states, f"nothing on {PREFIX}/state; got {sub.messages[:5]}"
        assert json.loads(states[-1][1])["label"] in ("red", "green", "blue", "yellow")
        assert sub.wait_for(lambda m: m[0] == f"{PREFIX}/availability" and m[1] == "online")
    finally:
        sub.close()
    assert PASSWORD not in r.stdout
    rel = mqtt_dev.release()
    assert rel["mqtt_password"] is True and PASSWORD not in json.dumps(rel)
    env = mqtt_dev.root / "releases" / mqtt_dev.current() / "env"
    assert os.stat(env).st_mode & 0o777 == 0o600 and f'EDGELITE_MQTT_PASSWORD="{PASSWORD}"' in env.read_text()
    ps = subprocess.run(["ps", "-eww", "-o", "args"], capture_output=True, text=True, check=True).stdout
    assert "--mqtt" in ps and PASSWORD not in ps  # the service runs, and no command line holds the password
    status = mqtt_dev.device.cli("--status", "--json", directory=DIR)
    assert status.returncode == 0 and rel["id"] in status.stdout and PASSWORD not in status.stdout, status.stdout
    logs = mqtt_dev.device.cli("--logs", "-n", "500", directory=DIR)
    assert logs.returncode == 0 and "frame" in logs.stdout and PASSWORD not in logs.stdout, logs.stdout[-2000:]
    assert leaks(mqtt_dev.root, PASSWORD) == []


def test_password_from_a_file_and_a_new_password_is_a_new_release(mqtt_dev, broker, tmp_path):
    """--mqtt-password-file (its first line) gives the same password the same release key; another password
    (here one the broker refuses) is another release — which fails its health check and is rolled back."""
    before = mqtt_dev.release()
    (tmp_path / "pw").write_text(PASSWORD + "\n")
    r = mqtt_dev.deploy("--mqtt-password-file", str(tmp_path / "pw"))
    assert r.returncode == 0, r.stdout[-4000:]
    same = mqtt_dev.release()
    assert same["meta"]["key"] == before["meta"]["key"] and same["venv"] == before["venv"]
    assert "venv " + same["venv"] + " reused" in r.stdout
    sub = Subscriber(broker.port, f"{PREFIX}/state")
    try:
        assert sub.wait_for(lambda m: not m[3], timeout=60)  # a live state (not the retained one) from the new service
    finally:
        sub.close()
    (tmp_path / "pw").write_text("not-the-password\n")
    r = mqtt_dev.deploy("--mqtt-password-file", str(tmp_path / "pw"))
    assert r.returncode == 6 and "the broker refused the login" in r.stdout, r.stdout[-4000:]
    assert "not-the-password" not in r.stdout
    failed = sorted(p.name for p in (mqtt_dev.root / "releases").glob("*.failed"))
    assert failed, "the new password made no new release"
    bad = json.loads((mqtt_dev.root / "releases" / failed[-1] / "release.json").read_text())
    assert bad["meta"]["key"] != same["meta"]["key"]
    assert mqtt_dev.current() == same["id"]  # rolled back to the release with the right password


def test_mqtt_password_file_without_mqtt_and_an_empty_file_are_one_line_errors(sshd, tiny_bundle, tmp_path):
    (tmp_path / "empty").write_text("\n")
    r = sshd.cli(str(tiny_bundle), "--mqtt-password-file", str(tmp_path / "empty"), directory=DIR)
    assert r.returncode == 2 and "--run-args '--mqtt" in r.stdout and len(r.stdout.strip().splitlines()) == 1, r.stdout
    r = sshd.cli(str(tiny_bundle), "--run-args", "--mqtt mqtt://cam@127.0.0.1/x", "--mqtt-password-file",
                 str(tmp_path / "empty"), directory=DIR)
    assert r.returncode == 2 and "is empty: put the MQTT password on its first line" in r.stdout, r.stdout
