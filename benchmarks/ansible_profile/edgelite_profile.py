"""Ansible callback for benchmarks/fleet_rollout.py: seconds per task (its start to its last host's result) and
ansible-playbook's own start-up (process start to the first play), as JSON in EDGELITE_PROFILE.

ansible-core's `profile_tasks` lives in the ansible.posix collection, which is not installed here (offline).
"""

from __future__ import annotations

import json
import os
import time

from ansible.plugins.callback import CallbackBase

DOCUMENTATION = """
name: edgelite_profile
type: aggregate
short_description: seconds per task as JSON (EDGELITE_PROFILE names the file)
description: Seconds per task and ansible-playbook's start-up, for benchmarks/fleet_rollout.py.
"""


def _process_start() -> float:
    """This process's start (epoch seconds), from /proc."""
    with open("/proc/self/stat") as f:
        ticks = float(f.read().rsplit(")", 1)[1].split()[19])
    with open("/proc/uptime") as f:
        up = float(f.read().split()[0])
    return time.time() - up + ticks / os.sysconf("SC_CLK_TCK")


class CallbackModule(CallbackBase):
    CALLBACK_VERSION = 2.0
    CALLBACK_TYPE = "aggregate"
    CALLBACK_NAME = "edgelite_profile"
    CALLBACK_NEEDS_ENABLED = True

    def __init__(self):
        super().__init__()
        self.t0 = _process_start()
        self.rows: list[list] = []  # [kind, name, start, end]

    def _open(self, kind: str, name: str) -> None:
        now = time.time()
        if self.rows and self.rows[-1][3] is None:
            self.rows[-1][3] = now
        self.rows.append([kind, name, now, None])

    def v2_playbook_on_start(self, playbook):
        self.rows.append(["startup", "ansible-playbook start-up", self.t0, time.time()])

    def v2_playbook_on_play_start(self, play):
        self._open("play", play.get_name().strip())
        self.rows[-1][3] = self.rows[-1][2]

    def v2_playbook_on_task_start(self, task, is_conditional):
        self._open("task", task.get_name().strip())

    def _result(self, result, *args, **kwargs):
        if self.rows and self.rows[-1][0] == "task":
            self.rows[-1][3] = time.time()

    v2_runner_on_ok = v2_runner_on_failed = v2_runner_on_skipped = v2_runner_on_unreachable = _result

    def v2_playbook_on_stats(self, stats):
        path = os.environ.get("EDGELITE_PROFILE")
        if not path:
            return
        end = time.time()
        rows = [{"kind": k, "name": n, "seconds": round(((e or s) - s), 2)} for k, n, s, e in self.rows]
        with open(path, "w") as f:
            json.dump({"total_s": round(end - self.t0, 2), "rows": rows}, f, indent=1)
