"""The device's trust list (`DIR/trusted_signers`, an OpenSSH allowed-signers file) and the check every step
that would run a bundle makes: once the list exists, a bundle runs here only when a key in it signed its
manifest (`edgelite.signature`). Only the `trust` request changes the list; no bundle push reaches it."""

from __future__ import annotations

import os
from pathlib import Path

from edgelite.deploy.agent.layout import AgentError, Layout
from edgelite.errors import EXIT_UNTRUSTED, EXIT_USAGE
from edgelite.signature import SignatureError, check_allowed_signers, verify


def untrusted(lay: Layout, bundle: Path) -> str | None:
    """Why `bundle` may not run here (unsigned, a foreign key, a changed manifest), or None: it may (a
    signature by a trusted key, or no trust list on this device)."""
    if not lay.trusted_signers.exists():
        return None
    try:
        verify(bundle, lay.trusted_signers)
    except SignatureError as e:
        return str(e)
    return None


def check_trusted(lay: Layout, bundle: Path) -> None:
    """Refuse (exit 10) a bundle this device's trust list does not vouch for."""
    why = untrusted(lay, bundle)
    if why:
        raise AgentError(f"refused by this device's trust list: {why}", EXIT_UNTRUSTED)


def trusted_keys(lay: Layout) -> list[str] | None:
    """The key fingerprints of this device's trust list; None without one (any bundle may run)."""
    try:
        return check_allowed_signers(lay.trusted_signers.read_text(), "the trust list")
    except FileNotFoundError:
        return None
    except (OSError, ValueError, SignatureError):  # unreadable or emptied by hand: it still refuses everything
        return []


def cmd_trust(lay: Layout, req: dict) -> dict:
    """Install `signers` (allowed-signers text) as the trust list, or delete it (`remove`). Replies the keys
    trusted, whether anything changed, and whether the current release is signed by one of them."""
    lay.ensure()
    path = lay.trusted_signers
    old = path.read_text() if path.exists() else None
    if req.get("remove"):
        path.unlink(missing_ok=True)
        return {"trusted": [], "changed": old is not None, "current_trusted": None}
    text = req.get("signers")
    if not isinstance(text, str):
        raise AgentError("the trust request needs signers (allowed-signers text) or remove: true", EXIT_USAGE)
    text = text if text.endswith("\n") else text + "\n"
    try:
        keys = check_allowed_signers(text, "the trust list")
    except SignatureError as e:
        raise AgentError(str(e), e.exit_code) from None
    if text != old:
        tmp = path.with_name(f".{path.name}.tmp")
        tmp.write_text(text)
        os.replace(tmp, path)
    current = lay.deployed()["bundle"]
    return {"trusted": keys, "changed": text != old,
            "current_trusted": None if current is None else untrusted(lay, Path(current)) is None}
