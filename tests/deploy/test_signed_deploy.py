"""Signed bundles end to end on the loopback sshd rig: `edgelite deploy --trust KEY.pub` installs the device's
trust list with a signed bundle; afterwards an unsigned bundle and one signed by another key are refused on
the device (exit 10) while the signed release keeps serving, checked through its real /healthz."""

from __future__ import annotations

import shutil
import subprocess

import pytest

from edgelite.errors import EXIT_UNTRUSTED
from edgelite.signature import sign

from .rig import free_port, healthz, wait_healthz

pytestmark = pytest.mark.timeout(600)

DIR = "~/edgelite-signed"


@pytest.fixture(scope="module")
def signing(tmp_path_factory, tiny_bundle, bundle_v2):
    """(release key, intruder key, signed v1, v2 unsigned, v2 signed by the intruder): copies, the session's
    bundles stay unsigned."""
    d = tmp_path_factory.mktemp("signing")
    keys = []
    for name in ("release", "intruder"):
        subprocess.run(["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-C", name, "-f", str(d / name)], check=True)
        keys.append(d / name)
    v1, v2, v2_foreign = (shutil.copytree(b, d / n) for b, n in
                          ((tiny_bundle, "v1"), (bundle_v2, "v2"), (bundle_v2, "v2-foreign")))
    sign(v1, keys[0])
    sign(v2_foreign, keys[1])
    return keys[0], keys[1], v1, v2, v2_foreign


@pytest.fixture(scope="module")
def deploy(sshd, wheel, wheelhouse, video):
    port = free_port()

    def run(bundle, *extra):
        return sshd.cli(str(bundle), "--offline", "--source", str(video), "--http", f"127.0.0.1:{port}",
                        "--wheel", str(wheel), "--health-timeout", "60", *extra, directory=DIR)

    run.port = port
    yield run
    sshd.cli("--uninstall", directory=DIR)


def test_an_untrusted_bundle_is_refused_and_the_signed_release_keeps_serving(sshd, signing, deploy):
    release, intruder, v1, v2, v2_foreign = signing
    r = deploy(v1, "--trust", f"{release}.pub")
    assert r.returncode == 0, r.stdout
    assert "trust list installed: only bundles signed by SHA256:" in r.stdout
    root = sshd.home / "edgelite-signed"
    assert (root / "trusted_signers").read_text().startswith('release namespaces="edgelite-bundle" ssh-ed25519 ')
    serving = wait_healthz(deploy.port)["release"]
    kept = sorted(p.name for p in (root / "bundles").iterdir())
    for bundle, says in ((v2, "is not signed (no edgelite.json.sig)"), (v2_foreign, "does not trust")):
        r = deploy(bundle)  # no trust option: the device's list stays, and decides
        assert r.returncode == EXIT_UNTRUSTED, r.stdout
        error = r.stdout.strip().splitlines()[-1]
        assert error.startswith("edgelite deploy: error: refused by this device's trust list: ") and says in error
        assert "nothing was switched, the previous release keeps serving" in error
        assert "[4/7] install" not in r.stdout  # refused at the push, before anything ran it
        code, body = healthz(deploy.port)
        assert code == 200 and body["release"] == serving
    assert sorted(p.name for p in (root / "bundles").iterdir()) == kept  # nothing refused stays on the device
    r = sshd.cli("--status", directory=DIR)
    assert "  trust     only bundles signed by SHA256:" in r.stdout, r.stdout
    # the trust list given with a deploy must vouch for that very bundle: refused before touching the device
    r = deploy(v2_foreign, "--trust", f"{release}.pub")
    assert r.returncode == EXIT_UNTRUSTED and "[1/7]" not in r.stdout, r.stdout
    # rotating: trust the new key too (no bundle: the list only), then its bundle deploys
    r = sshd.cli("--trust", f"{release}.pub", "--trust", f"{intruder}.pub", directory=DIR)
    assert r.returncode == 0 and "trust list installed" in r.stdout, r.stdout
    r = deploy(v2_foreign)
    assert r.returncode == 0, r.stdout
    assert wait_healthz(deploy.port)["release"] != serving
