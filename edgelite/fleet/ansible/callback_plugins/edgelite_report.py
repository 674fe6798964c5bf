"""Ansible callback: each host's `edgelite_report` fact, first error, timing and recap, as one JSON file.

Timing: `spans` = {play name: [epoch of the host's first task start, of its last result]}.

`edgelite fleet` enables it (ANSIBLE_CALLBACKS_ENABLED=edgelite_report) and names the file in
EDGELITE_FLEET_REPORT; it reads results from the role's own facts and the agent's JSON replies, never
from Ansible's human output. Used directly with ansible-playbook it does nothing unless enabled.
Every string from a device (release names, errors, health) goes into the file with its control
characters shown as `?` (`edgelite.remote.agent.printable`, as `edgelite deploy`): the summary prints it.
Standard library, Ansible and edgelite only (it runs inside ansible-playbook).
"""

from __future__ import annotations

import json
import os
import time

from ansible.plugins.callback import CallbackBase

# edgelite is installed for the controller's Python (the role's plan runs there): one rule for device text
from edgelite.remote.agent import printable

DOCUMENTATION = """
name: edgelite_report
type: aggregate
short_description: per-host results of the edgelite role as JSON (EDGELITE_FLEET_REPORT)
description: Writes each host's edgelite_report fact, first error, seconds per play and recap to a JSON file.
requirements: [the EDGELITE_FLEET_REPORT environment variable names the file]
"""


def _error(res: dict) -> str:
    """The one line that says why: the agent's reply `error`, else Ansible's message."""
    out = res.get("stdout")
    if isinstance(out, str) and out.strip().startswith("{"):
        try:
            reply = json.loads(out.strip().splitlines()[-1])
            if isinstance(reply, dict) and reply.get("error"):
                return str(reply["error"])
        except ValueError:
            pass
    if res.get("censored"):  # a no_log task (it carries settings) failed: the check after it says why
        return "a step that carries this host's settings failed (its output is hidden: no_log)"
    if res.get("rc") == 127 and not out:
        return "no edgelite agent on this host (nothing deployed there yet)"
    msg = res.get("msg") or ""
    err = (res.get("stderr") or "").strip().splitlines()
    if msg in ("", "non-zero return code") and err:
        return err[-1]
    return str(msg or "failed")


class CallbackModule(CallbackBase):
    CALLBACK_VERSION = 2.0
    CALLBACK_TYPE = "aggregate"
    CALLBACK_NAME = "edgelite_report"
    CALLBACK_NEEDS_ENABLED = True

    def __init__(self):
        super().__init__()
        self.path = os.environ.get("EDGELITE_FLEET_REPORT")
        self.hosts: dict[str, dict] = {}
        self.plays: list[str] = []
        self.t0 = time.time()

    def _host(self, name: str) -> dict:
        return self.hosts.setdefault(name, {"host": name, "spans": {}})

    def _touch(self, name: str) -> None:
        if not self.plays:
            return
        span = self._host(name)["spans"].setdefault(self.plays[-1], [time.time(), time.time()])
        span[1] = time.time()

    def v2_playbook_on_play_start(self, play):
        self.plays.append(play.get_name().strip())

    def v2_runner_on_start(self, host, task):
        self._touch(host.get_name())

    def v2_runner_on_ok(self, result):
        name = result._host.get_name()
        self._touch(name)
        report = (result._result.get("ansible_facts") or {}).get("edgelite_report")
        if isinstance(report, dict):
            self._host(name).update(printable(report))

    def v2_runner_on_failed(self, result, ignore_errors=False):
        name = result._host.get_name()
        self._touch(name)
        if ignore_errors:
            return
        h = self._host(name)
        if "error" not in h:  # the first failure says why; a rescue's re-raise does not
            h["error"] = printable(_error(result._result))
            h["failed_task"] = result._task.get_name()

    def v2_runner_on_unreachable(self, result):
        name = result._host.get_name()
        self._touch(name)
        h = self._host(name)
        h["unreachable"] = True
        h.setdefault("error", printable(_error(result._result)))

    def v2_playbook_on_stats(self, stats):
        if not self.path:
            return
        for name in stats.processed:
            self._host(name)["recap"] = stats.summarize(name)
        data = {"plays": self.plays, "hosts": self.hosts, "seconds": round(time.time() - self.t0, 2)}
        tmp = f"{self.path}.tmp"
        with open(tmp, "w") as f:
            json.dump(data, f, indent=1, default=str)
        os.replace(tmp, self.path)
