"""Signed bundles without a device: `edgelite sign` / `sign --verify` with the real ssh-keygen, and the agent's
trust list (`DIR/trusted_signers`) answering real requests in a folder here.

What a user would try: sign, then change the manifest, change a model file, sign with another key, forget to
sign, reuse a signature made for something else (`ssh-keygen -Y sign -n file`); and on the device, a bundle
that is unsigned or foreign-signed must never be accepted, smoke-tested or switched to.
"""

from __future__ import annotations

import json
import shutil
import subprocess
from pathlib import Path

import pytest

from edgelite.bundle import Bundle
from edgelite.cli import main
from edgelite.deploy.agent.__main__ import handle
from edgelite.deploy.agent.layout import Layout
from edgelite.errors import EXIT_CHECKSUM, EXIT_UNTRUSTED, EXIT_USAGE
from edgelite.manifest import MANIFEST
from edgelite.signature import SIGNATURE, sign, trust_list
from tests.deploy.test_agent import flip_a_byte, mini_bundle

pytestmark = pytest.mark.skipif(not shutil.which("ssh-keygen"), reason="needs ssh-keygen (openssh-client)")


def keygen(path: Path, comment: str) -> Path:
    subprocess.run(["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-C", comment, "-f", str(path)], check=True)
    return path


def fingerprint(pub: Path) -> str:
    return subprocess.run(["ssh-keygen", "-l", "-f", str(pub)], capture_output=True, text=True,
                          check=True).stdout.split()[1]


@pytest.fixture(scope="module")
def keys(tmp_path_factory):
    d = tmp_path_factory.mktemp("keys")
    return keygen(d / "release", "release-2026"), keygen(d / "intruder", "intruder")


@pytest.fixture()
def signed(tmp_path, keys) -> Path:
    b = mini_bundle(tmp_path / "bundle")
    sign(b, keys[0])
    return b


def edgelite(capsys, *args: str) -> tuple[int, str]:
    rc = main([str(a) for a in args])
    out = capsys.readouterr()
    return rc, out.out + out.err


def verify(capsys, bundle: Path, pub: Path) -> tuple[int, str]:
    return edgelite(capsys, "sign", "--verify", bundle, "--trust", pub)


# ------------------------------------------------------------------------------------- workstation
def test_sign_then_verify_names_the_signer(tmp_path, keys, capsys):
    b = mini_bundle(tmp_path / "bundle")
    rc, out = edgelite(capsys, "sign", b, "--key", keys[0])
    assert rc == 0 and f"{b / SIGNATURE}" in out, out
    assert (b / SIGNATURE).read_text().startswith("-----BEGIN SSH SIGNATURE-----")
    allowed = tmp_path / "trusted_signers"
    allowed.write_text(trust_list([f"{keys[0]}.pub"]))
    assert 'release-2026 namespaces="edgelite-bundle" ssh-ed25519 ' in allowed.read_text()
    rc, out = edgelite(capsys, "sign", "--verify", b, "--allowed-signers", allowed)
    assert rc == 0 and "signed by release-2026" in out, out
    # what the device runs: ssh-keygen itself agrees, with the same namespace
    r = subprocess.run(["ssh-keygen", "-Y", "verify", "-f", str(allowed), "-I", "release-2026", "-n", "edgelite-bundle",
                        "-s", str(b / SIGNATURE)], input=(b / MANIFEST).read_bytes(), capture_output=True)
    assert r.returncode == 0, r.stderr


def test_a_manifest_changed_after_signing_is_refused(signed, keys, capsys):
    b = Bundle.load(signed)
    b.labels = ["a", "not-b"]  # what someone would change: a label, a sha256 to vouch for another model
    b.save()
    rc, out = verify(capsys, signed, f"{keys[0]}.pub")
    assert rc == EXIT_UNTRUSTED, out
    assert "does not match edgelite.json (the manifest changed after it was signed)" in out
    assert len(out.strip().splitlines()) == 1


def test_a_model_file_changed_after_signing_is_refused(signed, keys, capsys):
    flip_a_byte(signed / "model_int8.tflite")  # the signed manifest's sha256 no longer matches the file
    rc, out = verify(capsys, signed, f"{keys[0]}.pub")
    assert rc == EXIT_CHECKSUM and "fails its checksum" in out, out


def test_a_bundle_signed_by_another_key_is_refused_with_its_fingerprint(signed, keys, capsys):
    sign(signed, keys[1])
    rc, out = verify(capsys, signed, f"{keys[0]}.pub")
    assert rc == EXIT_UNTRUSTED, out
    assert f"signed by key {fingerprint(Path(f'{keys[1]}.pub'))}, which" in out and "does not trust" in out


def test_an_unsigned_bundle_is_refused(tmp_path, keys, capsys):
    rc, out = verify(capsys, mini_bundle(tmp_path / "b"), f"{keys[0]}.pub")
    assert rc == EXIT_UNTRUSTED and "is not signed (no edgelite.json.sig)" in out and "edgelite sign" in out, out


def test_a_signature_made_for_another_namespace_is_refused(tmp_path, keys, capsys):
    b = mini_bundle(tmp_path / "b")
    sig = subprocess.run(["ssh-keygen", "-q", "-Y", "sign", "-n", "file", "-f", str(keys[0])],
                         input=(b / MANIFEST).read_bytes(), capture_output=True, check=True).stdout
    (b / SIGNATURE).write_bytes(sig)
    rc, out = verify(capsys, b, f"{keys[0]}.pub")
    assert rc == EXIT_UNTRUSTED and "was made for 'file', not 'edgelite-bundle'" in out, out


def test_sign_refuses_a_bundle_whose_files_do_not_match(tmp_path, keys, capsys):
    b = mini_bundle(tmp_path / "b")
    flip_a_byte(b / "model_int8.tflite")
    rc, out = edgelite(capsys, "sign", b, "--key", keys[0])
    assert rc == EXIT_CHECKSUM and not (b / SIGNATURE).exists(), out


@pytest.mark.parametrize("what, says", [("private", "is a private key: pass its public half"),
                                        ("garbage", "not `PRINCIPALS [OPTIONS] KEYTYPE BASE64`"),
                                        ("empty", "trusts no key")])
def test_a_bad_trust_list_is_refused_in_one_line(signed, keys, tmp_path, capsys, what, says):
    if what == "private":
        args = ["--trust", keys[0]]
    else:
        f = tmp_path / "allowed"
        f.write_text("release ssh-ed25519\n" if what == "garbage" else "# nobody\n")
        args = ["--allowed-signers", f]
    rc, out = edgelite(capsys, "sign", "--verify", signed, *args)
    assert rc == EXIT_USAGE and says in out and len(out.strip().splitlines()) == 1, out


# ------------------------------------------------------------------------------------------ device
def ask(root: Path, command: str, **fields) -> dict:
    return handle({"command": command, "dir": str(root), **fields})


def bundle_id(bundle: Path) -> str:
    import hashlib

    return hashlib.sha256((bundle / MANIFEST).read_bytes()).hexdigest()[:16]


def push(root: Path, bundle: Path) -> str:
    """What the workstation's push does: prepare-bundle, the copy into .incoming, accept-bundle's reply."""
    bid = bundle_id(bundle)
    state = ask(root, "prepare-bundle", bundle=bid)
    if not state["present"]:
        shutil.copytree(bundle, root / "bundles" / ".incoming" / bid, dirs_exist_ok=True)
    return bid


def test_the_device_accepts_only_bundles_a_trusted_key_signed(tmp_path, keys):
    root = tmp_path / "edgelite"
    r = ask(root, "trust", signers=trust_list([f"{keys[0]}.pub"]))
    assert r["ok"] and r["changed"] and r["trusted"] == [fingerprint(Path(f"{keys[0]}.pub"))]
    assert ask(root, "trust", signers=trust_list([f"{keys[0]}.pub"]))["changed"] is False
    assert ask(root, "status")["trusted"] == r["trusted"]
    unsigned = mini_bundle(tmp_path / "unsigned")
    foreign = mini_bundle(tmp_path / "foreign")
    foreign_manifest = json.loads((foreign / MANIFEST).read_text()) | {"info": {"v": 2}}
    (foreign / MANIFEST).write_text(json.dumps(foreign_manifest))  # another bundle id
    # a bundle cannot bring its own trust list: only the `trust` request writes DIR/trusted_signers
    (foreign / "trusted_signers").write_text(trust_list([f"{keys[1]}.pub"]))
    sign(foreign, keys[1])
    before = (root / "trusted_signers").read_text()
    for bundle, says in ((unsigned, "is not signed"), (foreign, "does not trust")):
        bid = push(root, bundle)
        r = ask(root, "accept-bundle", bundle=bid)
        assert not r["ok"] and r["exit_code"] == EXIT_UNTRUSTED, r
        assert r["error"].startswith("refused by this device's trust list: ") and says in r["error"]
        assert not (root / "bundles" / bid).exists() and not (root / "bundles" / ".incoming" / bid).exists()
    assert (root / "trusted_signers").read_text() == before
    sign(unsigned, keys[0])
    bid = push(root, unsigned)
    assert ask(root, "accept-bundle", bundle=bid)["ok"] and (root / "bundles" / bid / SIGNATURE).is_file()
    assert ask(root, "prepare-bundle", bundle=bid)["present"] is True


def test_an_old_unsigned_release_is_neither_smoke_tested_nor_switched_to(tmp_path, keys):
    """A release made before the trust list (or a rollback to it): refused before `current` moves."""
    root = tmp_path / "edgelite"
    bundle = mini_bundle(tmp_path / "b")
    bid = push(root, bundle)
    assert ask(root, "accept-bundle", bundle=bid)["ok"]  # no trust list yet: accepted
    ready = Layout(root).venvs / "env1" / ".ready"
    ready.parent.mkdir(parents=True)
    ready.touch()
    assert ask(root, "configure", mode="none", user="pi")["ok"]
    rid = ask(root, "release", bundle=bid, env="env1", source="0", http="127.0.0.1:1")["release"]
    r = ask(root, "trust", signers=trust_list([f"{keys[0]}.pub"]))
    assert r["ok"] and r["current_trusted"] is None  # nothing serves yet
    for command, fields in (("smoke", {"env": "env1", "bundle": bid}),
                            ("commit", {"release": rid, "no_service": True})):
        r = ask(root, command, **fields)
        assert not r["ok"] and r["exit_code"] == EXIT_UNTRUSTED and "is not signed" in r["error"], r
    assert Layout(root).current_rid() is None
    # the same bundle signed: prepare-bundle asks for it again (same id), accept swaps the signed copy in
    state = ask(root, "prepare-bundle", bundle=bid)
    assert state["present"] is False and "is not signed" in state["untrusted"]
    sign(bundle, keys[0])
    push(root, bundle)
    assert ask(root, "accept-bundle", bundle=bid)["ok"]
    r = ask(root, "commit", release=rid, no_service=True)
    assert r["ok"] and Layout(root).current_rid() == rid, r
    # removing the list takes an explicit request too
    assert ask(root, "trust", remove=True)["changed"] and not (root / "trusted_signers").exists()
    assert ask(root, "status")["trusted"] is None


def test_edgelite_run_on_the_device_refuses_an_unsigned_bundle_once_there_is_a_trust_list(tmp_path, keys, capsys):
    """Defence in depth: the service's own `edgelite run DIR/bundles/<id>` checks again at every start, so a
    bundle swapped in by hand (or deployed before the list) does not run; a bundle elsewhere is not checked."""
    root = tmp_path / "edgelite"
    Layout(root).ensure()
    bundle = mini_bundle(root / "bundles" / "0123456789abcdef")
    args = ("run", bundle, "--source", tmp_path, "--max-frames", "1")
    rc, out = edgelite(capsys, *args)
    assert rc not in (0, EXIT_UNTRUSTED) and "trust" not in out  # no list: not a model, as before
    assert ask(root, "trust", signers=trust_list([f"{keys[0]}.pub"]))["ok"]
    rc, out = edgelite(capsys, *args)
    assert rc == EXIT_UNTRUSTED and "is not signed" in out and len(out.strip().splitlines()) == 1, out
    sign(bundle, keys[1])
    rc, out = edgelite(capsys, *args)
    assert rc == EXIT_UNTRUSTED and "does not trust" in out, out
    sign(bundle, keys[0])
    rc, out = edgelite(capsys, *args)
    assert rc not in (0, EXIT_UNTRUSTED) and "trust" not in out, out  # signed: on to loading the (fake) model
