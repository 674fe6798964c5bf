"""Signed bundles: an OpenSSH signature of the manifest, checked against an OpenSSH allowed-signers file.

The manifest (`edgelite.json`) names every file of the bundle with its sha256, so one signature of the
manifest vouches for every file once each is checked against it (`edgelite.bundle.Bundle.verify`, the
agent's `verify_bundle`). The signature is `ssh-keygen -Y sign -n edgelite-bundle` over the manifest's
bytes, kept beside it as `edgelite.json.sig`; `ssh-keygen -Y verify` checks it (openssh-client is on every
Pi: no new dependency, no crypto of our own). Standard library only: the device agent ships this module.

    >>> SIGNATURE, NAMESPACE
    ('edgelite.json.sig', 'edgelite-bundle')
    >>> signer_line("ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIP3 release key 2026")
    'release_key_2026 namespaces="edgelite-bundle" ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIP3'
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import os
import re
import shutil
import struct
import subprocess
from pathlib import Path

from edgelite.errors import EXIT_UNTRUSTED, EXIT_USAGE, EdgeliteError
from edgelite.manifest import MANIFEST
from edgelite.remote.layout import BUNDLES, MARKER, TRUSTED_SIGNERS

#: the signature file, beside the manifest it signs
SIGNATURE = MANIFEST + ".sig"
#: the `ssh-keygen -Y` namespace: a signature made for another purpose (git commits, files) is no bundle's
NAMESPACE = "edgelite-bundle"
_KEY_TYPES = re.compile(r"^(ssh-(ed25519|rsa|dss)|ecdsa-sha2-nistp\d+|sk-[a-z0-9@.-]+)(-cert-v01@openssh\.com)?$")


class SignatureError(EdgeliteError):
    """A bundle that is not signed, or not by a trusted key, or whose manifest changed since (exit code 10)."""

    exit_code = EXIT_UNTRUSTED


def _ssh_keygen() -> str:
    exe = shutil.which("ssh-keygen")
    if not exe:
        raise SignatureError("ssh-keygen is not installed: install openssh-client (apt install openssh-client)",
                             EXIT_USAGE)
    return exe


def _keygen(*args: str, stdin: bytes | None = None, timeout: float = 60) -> subprocess.CompletedProcess:
    return subprocess.run([_ssh_keygen(), *args], input=stdin, capture_output=True, timeout=timeout)


def sign(bundle: str | os.PathLike, key: str | os.PathLike) -> Path:
    """Sign `bundle`'s manifest with the OpenSSH private key `key` (or KEY.pub held by ssh-agent); returns
    the signature file. The caller checks the files against the manifest first (`edgelite sign` does)."""
    root, key = Path(bundle), Path(key).expanduser()
    if not key.is_file():
        raise SignatureError(f"--key {key}: no such file; make one with `ssh-keygen -t ed25519 -f {key}`", EXIT_USAGE)
    manifest = (root / MANIFEST).read_bytes()
    # stdin carries the message, so ssh-keygen asks a passphrase on the terminal (or uses ssh-agent)
    r = _keygen("-q", "-Y", "sign", "-n", NAMESPACE, "-f", str(key), stdin=manifest, timeout=300)
    if r.returncode != 0 or b"BEGIN SSH SIGNATURE" not in r.stdout:
        why = r.stderr.decode(errors="replace").strip().splitlines()
        raise SignatureError(f"ssh-keygen could not sign with {key} ({why[-1] if why else r.returncode}): pass an "
                             "OpenSSH private key (ssh-keygen -t ed25519)", EXIT_USAGE)
    out = root / SIGNATURE
    tmp = out.with_name(f".{SIGNATURE}.tmp")
    tmp.write_bytes(r.stdout)
    os.replace(tmp, out)
    return out


def signature_info(armored: bytes) -> tuple[str, str]:
    """(namespace, key fingerprint `SHA256:...`) of an armored SSH signature (PROTOCOL.sshsig), unverified:
    only to say in an error WHICH key signed and for what."""
    body = b"".join(ln.strip() for ln in armored.splitlines() if ln.strip() and not ln.startswith(b"-----"))
    try:
        blob = base64.b64decode(body, validate=True)
    except (binascii.Error, ValueError):
        raise SignatureError(f"{SIGNATURE} is not an SSH signature; sign the bundle again with `edgelite sign`") from None
    fields, pos = [], 10  # b"SSHSIG" + uint32 version
    try:
        if blob[:6] != b"SSHSIG":
            raise ValueError
        for _ in range(2):  # publickey, namespace
            (n,) = struct.unpack(">I", blob[pos:pos + 4])
            fields.append(blob[pos + 4:pos + 4 + n])
            pos += 4 + n
    except (struct.error, ValueError):
        raise SignatureError(f"{SIGNATURE} is not an SSH signature; sign the bundle again with `edgelite sign`") from None
    fingerprint = "SHA256:" + base64.b64encode(hashlib.sha256(fields[0]).digest()).decode().rstrip("=")
    return fields[1].decode(errors="replace"), fingerprint


def verify(bundle: str | os.PathLike, allowed_signers: str | os.PathLike) -> str:
    """The principal (from `allowed_signers`) whose key signed `bundle`'s manifest; raises SignatureError
    (exit 10) when the bundle is unsigned, signed for another namespace, signed by a key the file does not
    trust, or when the manifest changed after it was signed. Checking the files against the manifest is
    the caller's (every reader of a bundle does it)."""
    root, allowed = Path(bundle), Path(allowed_signers)
    sig = root / SIGNATURE
    if not sig.is_file():
        raise SignatureError(f"{root} is not signed (no {SIGNATURE}) and only bundles signed by a key in {allowed} "
                             "are accepted: sign it with `edgelite sign BUNDLE --key KEY`")
    namespace, fingerprint = signature_info(sig.read_bytes())
    if namespace != NAMESPACE:
        raise SignatureError(f"{sig} was made for {namespace!r}, not {NAMESPACE!r}: sign the bundle with "
                             "`edgelite sign BUNDLE --key KEY`")
    found = _keygen("-Y", "find-principals", "-s", str(sig), "-f", str(allowed))
    principals = found.stdout.decode(errors="replace").split() if found.returncode == 0 else []
    if not principals:
        raise SignatureError(f"{root} is signed by key {fingerprint}, which {allowed} does not trust: sign it with a "
                             "trusted key, or trust this one explicitly (`edgelite deploy --trust KEY.pub`)")
    manifest = (root / MANIFEST).read_bytes()
    for principal in principals:
        r = _keygen("-Y", "verify", "-f", str(allowed), "-I", principal, "-n", NAMESPACE, "-s", str(sig),
                    stdin=manifest)
        if r.returncode == 0:
            return principal
    raise SignatureError(f"{root}: the signature by {fingerprint} does not match {MANIFEST} (the manifest changed "
                         "after it was signed): sign the bundle again")


def check_deployed(bundle: str | os.PathLike) -> None:
    """`edgelite run` on a bundle of a deploy folder (DIR/bundles/<id>) whose device has a trust list: the same
    check the agent made before the switch, again at every start (a bundle swapped in by hand, or one deployed
    before the list, does not run). Anywhere else: nothing to check."""
    path = Path(bundle).resolve()
    root = path.parent.parent
    if path.parent.name == BUNDLES and (root / MARKER).is_file() and (root / TRUSTED_SIGNERS).exists():
        verify(path, root / TRUSTED_SIGNERS)


def verify_with(bundle: str | os.PathLike, allowed_signers: str) -> str:
    """`verify` against an allowed-signers TEXT (the workstation's `--trust`/`--allowed-signers`)."""
    import tempfile

    with tempfile.TemporaryDirectory(prefix="edgelite-trust-") as tmp:
        path = Path(tmp) / "allowed_signers"
        path.write_text(allowed_signers)
        return verify(bundle, path)


def signer_line(public_key: str, principal: str | None = None) -> str:
    """One allowed-signers line that trusts the OpenSSH public key `public_key` ("TYPE BASE64 [comment]") for
    edgelite bundles only; the principal is the key's comment (made a single word) unless given."""
    parts = (public_key.strip().splitlines() or [""])[0].split(None, 2)
    if len(parts) < 2 or not _KEY_TYPES.match(parts[0]):
        raise SignatureError("not an OpenSSH public key (expected a KEY.pub line: ssh-ed25519 AAAA... comment)",
                             EXIT_USAGE)
    comment = re.sub(r"[^A-Za-z0-9@._+-]+", "_", parts[2].strip()) if len(parts) > 2 else ""
    return f"{principal or comment or 'edgelite'} namespaces=\"{NAMESPACE}\" {parts[0]} {parts[1]}"


def trust_list(keys: list[str] | tuple[str, ...] = (), allowed_signers: str | None = None) -> str:
    """The allowed-signers text of `deploy --trust KEY.pub ...` and/or `--allowed-signers FILE`, checked."""
    lines = []
    if allowed_signers:
        path = Path(allowed_signers).expanduser()
        try:
            lines.append(path.read_text().rstrip("\n"))
        except (OSError, UnicodeDecodeError) as e:
            raise SignatureError(f"--allowed-signers {path}: {e.strerror if isinstance(e, OSError) else e}",
                                 EXIT_USAGE) from None
        check_allowed_signers(lines[0] + "\n", f"--allowed-signers {path}")
    for key in keys:
        path = Path(key).expanduser()
        try:
            text = path.read_text()
        except (OSError, UnicodeDecodeError) as e:
            raise SignatureError(f"--trust {path}: {e.strerror if isinstance(e, OSError) else e}", EXIT_USAGE) from None
        if "PRIVATE KEY" in text:
            raise SignatureError(f"--trust {path} is a private key: pass its public half ({path}.pub)", EXIT_USAGE)
        try:
            lines.append(signer_line(text))
        except SignatureError as e:
            raise SignatureError(f"--trust {path}: {e}", EXIT_USAGE) from None
    return "".join(f"{ln}\n" for ln in lines)


def check_allowed_signers(text: str, where: str = "the allowed-signers file") -> list[str]:
    """The key fingerprints an allowed-signers text trusts; raises SignatureError (exit 2) for a text that
    trusts no key, or a line that is not `PRINCIPALS [OPTIONS] KEYTYPE BASE64` (man ssh-keygen)."""
    keys = []
    for n, line in enumerate(text.splitlines(), 1):
        if not line.strip() or line.lstrip().startswith("#"):
            continue
        fields = _fields(line)
        at = next((i for i, f in enumerate(fields) if _KEY_TYPES.match(f)), None)
        if at is None or at == 0 or at + 1 >= len(fields):
            raise SignatureError(f"{where}, line {n}: not `PRINCIPALS [OPTIONS] KEYTYPE BASE64` (see ALLOWED SIGNERS "
                                 "in man ssh-keygen); `edgelite deploy --trust KEY.pub` writes one for you", EXIT_USAGE)
        try:
            blob = base64.b64decode(fields[at + 1], validate=True)
        except (binascii.Error, ValueError):
            raise SignatureError(f"{where}, line {n}: the key is not base64", EXIT_USAGE) from None
        keys.append("SHA256:" + base64.b64encode(hashlib.sha256(blob).digest()).decode().rstrip("="))
    if not keys:
        raise SignatureError(f"{where} trusts no key: give at least one (`--trust KEY.pub`)", EXIT_USAGE)
    return keys


def _fields(line: str) -> list[str]:
    """An allowed-signers line split at blanks outside double quotes (options may quote a space)."""
    return re.findall(r'(?:[^\s"]|"[^"]*")+', line)
