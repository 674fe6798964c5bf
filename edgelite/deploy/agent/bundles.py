"""Bundles on the device: verified against their manifest before they are accepted, then never changed."""

from __future__ import annotations

import json
import shutil
import subprocess
from pathlib import Path

from edgelite.deploy.agent.layout import AgentError, Layout
from edgelite.deploy.agent.trust import check_trusted, untrusted
from edgelite.errors import EXIT_CHECKSUM, EXIT_FAILED, EXIT_USAGE
from edgelite.jsonfile import fsync_tree, rename_durably
from edgelite.manifest import IMX500_NETWORK, IMX500_PACKAGER, MANIFEST, confined_file, sha256_file


def verify_bundle(root: Path) -> list[str]:
    """Problems of the bundle at `root` (empty = every file matches the manifest's size and sha256)."""
    mpath = root / MANIFEST
    try:
        manifest = json.loads(mpath.read_text())
    except OSError:
        return [f"{MANIFEST} is missing"]
    except ValueError as e:
        return [f"{MANIFEST} is not valid JSON ({e})"]
    models = manifest.get("models") if isinstance(manifest, dict) else None
    if not isinstance(models, list) or not all(isinstance(m, dict) for m in models):
        return [f"{MANIFEST} has no list of model entries"]
    problems = []
    files = [(m.get("path"), m.get("sha256"), m.get("bytes"), True) for m in models
             if m.get("status", "ok") == "ok" and m.get("path")]
    held = manifest.get("info", {}).get("heldout") if isinstance(manifest.get("info"), dict) else None
    if isinstance(held, dict) and held.get("path"):
        files.append((held["path"], held.get("sha256"), None, False))
    if not files:
        problems.append("the manifest lists no model file")
    for rel, digest, size, is_model in files:
        try:
            p = confined_file(root, rel)
        except (ValueError, OSError) as e:  # outside the bundle, not a regular file, or missing
            problems.append(str(e))
            continue
        if is_model and (not isinstance(size, int) or isinstance(size, bool)):
            problems.append(f"{rel} has no size (bytes) in the manifest")
        elif size is not None and p.stat().st_size != size:
            problems.append(f"{rel} is {p.stat().st_size} bytes, the manifest says {size}")
        elif not isinstance(digest, str) or not digest:
            problems.append(f"{rel} has no sha256 in the manifest")
        elif sha256_file(p) != digest:
            problems.append(f"{rel} fails its sha256 check (manifest {digest[:12]}…)")
    return problems


def _refuse(where: Path, problems: list[str]) -> AgentError:
    return AgentError(f"the bundle at {where} does not match its manifest: {'; '.join(problems)}", EXIT_CHECKSUM,
                      problems=problems)


def cmd_verify(lay: Layout, req: dict) -> dict:
    path = Path(req["path"]).expanduser()
    problems = verify_bundle(path)
    if problems:
        raise _refuse(path, problems)
    return {"problems": []}


def cmd_prepare_bundle(lay: Layout, req: dict) -> dict:
    """Is bundles/<id> already here, intact and (with a trust list) signed by a trusted key? A damaged or
    unsigned copy is copied to .incoming for the push to repair (the bundle id is the manifest's: a signature
    added or replaced later keeps the id)."""
    bid = _bundle_id(req)
    lay.ensure()
    final, inc = lay.bundles / bid, lay.incoming / bid
    if final.is_dir():
        problems = verify_bundle(final)
        why = None if problems else untrusted(lay, final)
        shutil.rmtree(inc, ignore_errors=True)
        if not problems and not why:
            return {"present": True}
        shutil.copytree(final, inc, symlinks=True)  # rsync then sends only what differs
        return {"present": False, "damaged": problems} if problems else {"present": False, "untrusted": why}
    inc.mkdir(parents=True, exist_ok=True)
    return {"present": False}


def cmd_accept_bundle(lay: Layout, req: dict) -> dict:
    """Verify .incoming/<id> on the device (every file against the manifest, and the manifest's signature when
    the device has a trust list: exit 10 otherwise) and move it to bundles/<id> (renames: all or nothing)."""
    bid = _bundle_id(req)
    inc, final = lay.incoming / bid, lay.bundles / bid
    problems = verify_bundle(inc)
    if problems:
        raise _refuse(inc, problems)
    try:
        check_trusted(lay, inc)
    except AgentError:
        shutil.rmtree(inc, ignore_errors=True)  # never kept where a later step could pick it up
        raise
    package_imx500(inc)
    fsync_tree(inc)  # verified bytes on the disk before the name that says "verified" (a power cut)
    if final.exists():
        if not verify_bundle(final) and not untrusted(lay, final):
            shutil.rmtree(inc)
            return {}
        old = lay.incoming / f"{bid}.damaged"
        shutil.rmtree(old, ignore_errors=True)
        final.rename(old)  # a damaged copy in use: swap in the repaired one
        rename_durably(inc, final)
        shutil.rmtree(old, ignore_errors=True)
    else:
        rename_durably(inc, final)
    return {}


def package_imx500(root: Path, timeout: float = 300) -> str | None:
    """The bundle's packerOut.zip (its imx500 entry) -> root/imx500/network.rpk, by Raspberry Pi's
    imx500-package, when the bundle has one and the device has the tool (preflight refuses `--source imx500`
    without it). Returns the network's path, or None when there is nothing to package."""
    manifest = json.loads((root / MANIFEST).read_text())
    entry = next((m for m in manifest.get("models", []) if isinstance(m, dict) and m.get("name") == "imx500"
                  and m.get("status", "ok") == "ok" and m.get("path")), None)
    tool = shutil.which(IMX500_PACKAGER)
    if entry is None or tool is None:
        return None
    network = root / IMX500_NETWORK
    try:
        proc = subprocess.run([tool, "-i", str(confined_file(root, entry["path"])), "-o", str(network.parent)],
                              capture_output=True, text=True, timeout=timeout, stdin=subprocess.DEVNULL)
    except subprocess.TimeoutExpired:
        raise AgentError(f"{IMX500_PACKAGER} did not finish within {timeout:.0f} s", EXIT_FAILED) from None
    if proc.returncode != 0 or not network.is_file():
        tail = next((ln.strip() for ln in reversed((proc.stdout + proc.stderr).splitlines()) if ln.strip()), "no output")
        raise AgentError(f"{IMX500_PACKAGER} could not make {IMX500_NETWORK} from {entry['path']} "
                         f"(exit {proc.returncode}): {tail[:200]}", EXIT_FAILED)
    return str(network)


def _bundle_id(req: dict) -> str:
    bid = str(req["bundle"])
    if not bid or "/" in bid or bid.startswith("."):
        raise AgentError(f"bad bundle id {bid!r}: expected the manifest's 16 hex digits", EXIT_USAGE)
    return bid
