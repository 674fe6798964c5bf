"""Bundles on the device: verified against their manifest before they are accepted, then never changed."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

from edgelite.deploy.agent.layout import AgentError, Layout
from edgelite.errors import EXIT_CHECKSUM, EXIT_USAGE
from edgelite.jsonfile import fsync_tree, rename_durably
from edgelite.manifest import MANIFEST, confined_file, sha256_file


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
    """Is bundles/<id> already here and intact? A damaged copy is copied to .incoming for the push to repair."""
    bid = _bundle_id(req)
    lay.ensure()
    final, inc = lay.bundles / bid, lay.incoming / bid
    if final.is_dir():
        problems = verify_bundle(final)
        shutil.rmtree(inc, ignore_errors=True)
        if not problems:
            return {"present": True}
        shutil.copytree(final, inc, symlinks=True)  # rsync then sends only what differs
        return {"present": False, "damaged": problems}
    inc.mkdir(parents=True, exist_ok=True)
    return {"present": False}


def cmd_accept_bundle(lay: Layout, req: dict) -> dict:
    """Verify .incoming/<id> on the device and move it to bundles/<id> (renames: all or nothing)."""
    bid = _bundle_id(req)
    inc, final = lay.incoming / bid, lay.bundles / bid
    problems = verify_bundle(inc)
    if problems:
        raise _refuse(inc, problems)
    fsync_tree(inc)  # verified bytes on the disk before the name that says "verified" (a power cut)
    if final.exists():
        if not verify_bundle(final):
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


def _bundle_id(req: dict) -> str:
    bid = str(req["bundle"])
    if not bid or "/" in bid or bid.startswith("."):
        raise AgentError(f"bad bundle id {bid!r}: expected the manifest's 16 hex digits", EXIT_USAGE)
    return bid
