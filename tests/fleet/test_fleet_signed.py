"""`edgelite fleet deploy` honours signed bundles: a host's `edgelite_allowed_signers` becomes its device's
trust list, and a later rollout of an unsigned bundle is refused on the device while the signed release keeps
serving. One of the fleet's devices, in a folder (and on a port) of its own: the other fleet tests' state
is left alone."""

from __future__ import annotations

import shutil
import subprocess

import pytest

from edgelite.errors import EXIT_FLEET
from edgelite.signature import sign, trust_list

from ..deploy.rig import free_port, healthz, wait_healthz
from .test_fleet import edgelite, rollout, rows

pytestmark = pytest.mark.timeout(900)


def test_the_hosts_trust_list_refuses_an_unsigned_rollout(fleet, video, bundles, tmp_path):
    d = fleet.devices[-1]
    key = tmp_path / "release"
    subprocess.run(["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-C", "release", "-f", str(key)], check=True)
    (tmp_path / "trusted_signers").write_text(trust_list([f"{key}.pub"]))
    signed = shutil.copytree(bundles["a"], tmp_path / "signed")
    sign(signed, key)
    port = free_port()
    own = {"edgelite_dir": "~/edgelite-signed", "edgelite_http": f"127.0.0.1:{port}"}
    trusted = {**own, "edgelite_allowed_signers": f"\"{{{{ lookup('file', '{tmp_path}/trusted_signers') }}}}\""}
    hosts = fleet.inventory(tmp_path / "signed.ini", video, {d.name: trusted}, devices=[d])
    r, summary = rollout(hosts, signed, tmp_path=tmp_path)
    assert r.returncode == 0 and rows(summary)[d.name]["result"] == "deployed", r.stdout[-4000:]
    assert (d.home / "edgelite-signed" / "trusted_signers").read_text() == (tmp_path / "trusted_signers").read_text()
    serving = wait_healthz(port)["release"]
    # the next inventory does not mention the list: the device's own decides
    hosts = fleet.inventory(tmp_path / "plain.ini", video, {d.name: own}, devices=[d])
    try:
        r, summary = rollout(hosts, bundles["b"], tmp_path=tmp_path)
        assert r.returncode == EXIT_FLEET, r.stdout[-4000:]
        assert rows(summary)[d.name]["result"] == "failed", summary
        assert "refused by this device's trust list" in r.stdout and "is not signed" in r.stdout
        code, body = healthz(port)
        assert code == 200 and body["release"] == serving
    finally:  # this folder only; the fleet's own ~/edgelite on the device stays
        edgelite("deploy", "--uninstall", "--host", f"{d.user}@127.0.0.1:{d.port}", "--identity", str(fleet.key),
                 "--known-hosts", str(fleet.known_hosts), "--dir", "~/edgelite-signed")
