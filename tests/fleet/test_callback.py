"""The fleet's callback plugin (edgelite_report) with real Ansible on localhost: what a device says (its report
fields, its agent's error) reaches the summary with its control characters shown as `?` (issue #22, hole 10's
fleet half), and a failed no_log task is named without its hidden output."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest

from .conftest import ROOT

pytest.importorskip("ansible", reason="edgelite fleet needs ansible-core: pip install 'edgelite[fleet]'")

HOSTILE = "r1\x1b]0;owned\x07\x1b[2J\rfake ok"

PLAYBOOK = """
- name: A device that answers with escape sequences
  hosts: all
  gather_facts: false
  tasks:
    - name: Report
      ansible.builtin.set_fact:
        edgelite_report: {result: deployed, after: "%(after)s"}
    - name: The agent fails
      ansible.builtin.command:
        argv: ["%(python)s", "-c", "import json, sys; print(json.dumps({'ok': False, 'error': %(error)s})); sys.exit(3)"]
      when: inventory_hostname == "h1"
    - name: A step that carries settings fails
      ansible.builtin.command: "false"
      no_log: true
      when: inventory_hostname == "h2"
"""


def test_device_strings_reach_the_report_without_control_characters(tmp_path):
    from edgelite.fleet.runner import ansible_playbook, environment

    book = tmp_path / "hostile.yml"
    after = HOSTILE.encode("unicode_escape").decode()  # YAML double quotes: \x1b etc. decode to the bytes
    error = repr("bad " + HOSTILE).replace("\\", "\\\\")  # a Python literal inside YAML double quotes
    book.write_text(PLAYBOOK % {"after": after, "python": sys.executable, "error": error})
    report = tmp_path / "report.json"
    r = subprocess.run([ansible_playbook(), "-i", "h1,h2,", "-c", "local", str(book),
                        "-e", f"ansible_python_interpreter={sys.executable}"], cwd=ROOT,
                       env=environment(report), capture_output=True, text=True, timeout=300)
    assert r.returncode != 0, r.stdout[-3000:]
    hosts = json.loads(report.read_text())["hosts"]
    text = json.dumps(hosts, ensure_ascii=False)
    assert "\x1b" not in text and "\x07" not in text and "\r" not in text, hosts
    assert hosts["h1"]["after"] == "r1?]0;owned??[2J?fake ok", hosts
    assert hosts["h1"]["error"] == "bad r1?]0;owned??[2J?fake ok", hosts  # the agent's reply `error`
    # a failed no_log task is named, its hidden output is not guessed at
    assert hosts["h2"]["failed_task"] == "A step that carries settings fails" and "no_log" in hosts["h2"]["error"]
