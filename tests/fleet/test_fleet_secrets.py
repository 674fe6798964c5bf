"""`edgelite fleet deploy -v` keeps an inventory's secrets (issue #22, hole 4): one real device (its own user and
sshd on 127.0.0.1), real Ansible at -v. Neither the camera password nor the preview token, nor any hash of the
token a guess could be checked against, reaches the terminal; a failing host still says why in one line; the
token and the camera URL reach the service through a 0600 environment file, never its command line (hole 7).
"""

from __future__ import annotations

import hashlib
import json
import os
import stat
import subprocess
import sys

import pytest

from edgelite.errors import EXIT_FLEET

from ..deploy.rig import wait_healthz
from .conftest import ROOT, env, running_fleet
from .fleetkit import Fleet

pytestmark = pytest.mark.timeout(900)

# an all-digit token: an INI inventory reads it as an int (it broke the release task)
TOKEN = "730194826551093"
PASSWORD = "p@ssw0rd-7Qz"


@pytest.fixture(scope="module")
def device(tmp_path_factory):
    with running_fleet(tmp_path_factory.mktemp("fleet-secrets"), 1, prefix="elsc") as f:
        yield f


def deploy_v(fleet: Fleet, inventory, bundle, tmp_path) -> tuple[subprocess.CompletedProcess, dict]:
    out = tmp_path / "summary.json"
    r = subprocess.run([sys.executable, "-m", "edgelite", "fleet", "deploy", str(bundle), "-i", str(inventory),
                        "--offline", "-v", "--json", str(out)], stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                       text=True, timeout=900, cwd=ROOT, env=env())
    return r, (json.loads(out.read_text()) if out.exists() else {})


def leaks(text: str, *secrets: str) -> list[str]:
    """Which of `secrets` (or the token's plain sha256) appear in `text`."""
    found = [s for s in secrets if s in text]
    return found + [f"sha256({TOKEN})" for _ in [0] if hashlib.sha256(TOKEN.encode()).hexdigest() in text]


def test_verbose_rollout_with_a_token_shows_neither_token_nor_its_hash(device, bundles, video, tmp_path):
    d = device.devices[0]
    hosts = device.inventory(tmp_path / "hosts.ini", video, {d.name: {"edgelite_http": f"0.0.0.0:{d.http}",
                                                                       "edgelite_token": TOKEN}})
    r, summary = deploy_v(device, hosts, bundles["a"], tmp_path)
    assert r.returncode == 0, r.stdout[-4000:]
    assert "TASK [" in r.stdout and "ok: [" in r.stdout  # -v output was there to leak into
    assert leaks(r.stdout + json.dumps(summary), TOKEN) == []
    wait_healthz(d.http)
    release = d.root / "releases" / d.current()
    run = (release / "run").read_text()
    # what `ps` and the unit show: no token, no source
    assert TOKEN not in run and d.release(d.current())["source"] not in run, run
    envfile = release / "env"
    assert stat.S_IMODE(os.stat(envfile).st_mode) == 0o600
    assert f'EDGELITE_TOKEN="{TOKEN}"' in envfile.read_text()
    assert TOKEN not in json.dumps(d.release(d.current()))
    # `fleet status -v` shows the release, not its source
    st = subprocess.run([sys.executable, "-m", "edgelite", "fleet", "status", "-i", str(hosts), "-v"],
                        stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, timeout=300, cwd=ROOT, env=env())
    assert st.returncode == 0 and d.current() in st.stdout, st.stdout[-3000:]
    assert d.release(d.current())["source"] not in st.stdout, st.stdout[-3000:]


def test_verbose_rollout_with_a_camera_password_fails_readably_without_it(device, bundles, tmp_path):
    d = device.devices[0]
    before = d.current()
    source = f"rtsp://admin:{PASSWORD}@127.0.0.1:9/cam?user=admin&pwd={PASSWORD}"
    hosts = device.inventory(tmp_path / "hosts.ini", source, {d.name: {"edgelite_health_timeout": 8}})
    r, summary = deploy_v(device, hosts, bundles["b"], tmp_path)
    assert r.returncode == EXIT_FLEET, r.stdout[-4000:]
    assert leaks(r.stdout + json.dumps(summary), PASSWORD) == []
    row = summary["hosts"][0]
    assert row["result"] == "rolled back" and row["after"] == before, row
    assert row["error"] and "censored" not in row["error"], row  # still says why
    assert "admin:***@" in r.stdout or "admin:***@" in row["error"] or "health" in row["error"], row
