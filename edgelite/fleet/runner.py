"""Run one of the shipped playbooks with `ansible-playbook` (a subprocess) and read back its JSON report.

The playbooks and the `edgelite` role live in `edgelite/fleet/ansible/` (package data). Results come
from the role's `edgelite_report` facts through the `edgelite_report` callback plugin shipped beside
the playbooks (EDGELITE_FLEET_REPORT names its file) - never from Ansible's human output, which goes
to the terminal unchanged.
"""

from __future__ import annotations

import json
import os
import shlex
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

from edgelite.errors import MissingExtra
from edgelite.fleet.errors import EXIT_FLEET, EXIT_USAGE, FleetError

ANSIBLE_DIR = Path(__file__).resolve().parent / "ansible"
PLAYBOOKS = ("deploy", "status", "rollback", "logs")


def playbook(name: str = "deploy") -> Path:
    """The shipped playbook `name` (deploy: the one to use with ansible-playbook directly)."""
    return ANSIBLE_DIR / f"{name}.yml"


def ansible_playbook() -> str:
    """The ansible-playbook next to this Python (a venv's bin/) or on PATH."""
    here = Path(sys.executable).parent / "ansible-playbook"
    found = str(here) if here.exists() else shutil.which("ansible-playbook")
    if not found:
        raise MissingExtra("ansible-core", "fleet", what="edgelite fleet")
    return found


def environment(report: Path, strict_host_key: bool = False, known_hosts: str | None = None) -> dict[str, str]:
    """ansible-playbook's environment: our callback enabled (besides the user's), quiet interpreter discovery,
    and `edgelite deploy`'s host-key policy for Ansible's ssh (`edgelite.remote.ssh.policy_options`:
    accept-new, or yes with --strict-host-key; an inventory's own ansible_ssh_common_args come first and win).
    Ansible's host_key_checking stays on: it would otherwise turn checking off."""
    from edgelite.remote.ssh import policy_options

    env = dict(os.environ)
    policy = shlex.join(policy_options(strict_host_key, known_hosts, batch=False))
    for tool in ("SSH", "SFTP", "SCP"):  # the file copies too, when they open their own connection
        name = f"ANSIBLE_{tool}_EXTRA_ARGS"
        env[name] = " ".join(filter(None, (env.get(name, ""), policy)))
    env["ANSIBLE_HOST_KEY_CHECKING"] = "True"
    cbs = [c for c in env.get("ANSIBLE_CALLBACKS_ENABLED", "").split(",") if c.strip()]
    env["ANSIBLE_CALLBACKS_ENABLED"] = ",".join([*cbs, "edgelite_report"])
    paths = [str(ANSIBLE_DIR / "callback_plugins"), *filter(None, env.get("ANSIBLE_CALLBACK_PLUGINS", "").split(":"))]
    env["ANSIBLE_CALLBACK_PLUGINS"] = ":".join(paths)
    env["EDGELITE_FLEET_REPORT"] = str(report)
    env.setdefault("ANSIBLE_PYTHON_INTERPRETER", "auto_silent")
    env.setdefault("ANSIBLE_NOCOWS", "1")
    env.setdefault("ANSIBLE_RETRY_FILES_ENABLED", "false")
    env.setdefault("ANSIBLE_DISPLAY_SKIPPED_HOSTS", "false")
    return env


def run_playbook(name: str, inventory: Path | str, extra_vars: dict, *, limit: str | None = None,
                 forks: int | None = None, vault_password_file: str | None = None, verbose: bool = False,
                 strict_host_key: bool = False, known_hosts: str | None = None, out=None) -> tuple[int, dict]:
    """(ansible-playbook's exit status, the report: {"plays", "hosts": {name: {...}}, "seconds"}).

    Ansible's own progress goes to `out` (default stdout). Raises FleetError when no host ran at all.
    """
    inv = Path(inventory).expanduser()
    if not inv.exists():
        raise FleetError(f"inventory {inventory}: no such file or folder (an Ansible inventory: hosts.ini, "
                         "hosts.yml or a folder with group_vars/)", EXIT_USAGE)
    from edgelite.fleet.plan import layout

    out = out or sys.stdout
    # the role's first task would ask a Python of its own for the layout (and build the agent): known here
    extra_vars = {"_edgelite_layout": layout(build=name == "deploy"), **extra_vars}
    with tempfile.TemporaryDirectory(prefix="edgelite-fleet-") as tmp:
        report, evars = Path(tmp) / "report.json", Path(tmp) / "vars.json"
        evars.write_text(json.dumps(extra_vars))
        cmd = [ansible_playbook(), "-i", str(inv), str(playbook(name)), "-e", f"@{evars}"]
        if limit:
            cmd += ["--limit", limit]
        if forks:
            cmd += ["--forks", str(int(forks))]
        if vault_password_file:
            cmd += ["--vault-password-file", str(vault_password_file)]
        if verbose:
            cmd.append("-v")
        out.flush()
        proc = subprocess.run(cmd, env=environment(report, strict_host_key, known_hosts), stdout=out,
                              stderr=subprocess.STDOUT)
        data = json.loads(report.read_text()) if report.exists() else {}
    if not data.get("hosts"):
        why = ("no host matched" if proc.returncode == 0 else
               f"ansible-playbook exited with {proc.returncode} before any host ran (see its output above)")
        raise FleetError(f"{why}: check the inventory {inventory}" + (f" and --limit {limit}" if limit else ""),
                         EXIT_USAGE if proc.returncode in (0, 1, 5) else EXIT_FLEET)
    return proc.returncode, data
