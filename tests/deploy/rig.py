"""Small helpers the deploy tests share: a free loopback port, hostile folder names, the device's /healthz read from the host, and
the agent's facts of this machine."""

from __future__ import annotations

import json
import os
import socket
import string
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]  # the checkout


def hostile_names() -> list[str]:
    """Folder names from every character a name can hold that a unit file treats specially: each ASCII
    punctuation mark but `/`, space and tab inside, at the start and at the end of a name, then a few mixes."""
    names = []
    for c in string.punctuation.replace("/", "") + " \t":
        names += [f"a{c}b", f"{c}lead", f"trail{c}"]
    return names + ['a"\'\\\t%$;b', "100%h", "$HOME", "${X}", "\\x41", "\\n", "-dash", "ünïcødé ✓", "a  b", "%%"]


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def healthz(port: int, timeout: float = 3.0) -> tuple[int | None, dict | None]:
    import urllib.error
    import urllib.request

    try:
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/healthz", timeout=timeout) as r:
            return r.status, json.loads(r.read())
    except urllib.error.HTTPError as e:
        return e.code, json.loads(e.read() or b"{}")
    except OSError:
        return None, None


def wait_healthz(port: int, timeout: float = 30.0, frames_above: int = 0) -> dict:
    deadline = time.monotonic() + timeout
    body = None
    while time.monotonic() < deadline:
        code, body = healthz(port)
        if code == 200 and body and body.get("frames", 0) > frames_above:
            return body
        time.sleep(0.3)
    raise AssertionError(f"no healthy /healthz on port {port} within {timeout} s (last: {body})")


def write_broken_copy(bundle: Path, out: Path) -> Path:
    """A copy of `bundle` whose manifest is right about its int8 file (sha256 and all) but the file is not a
    model: it passes every check and cannot run on the device."""
    import shutil

    from edgelite.bundle import Bundle

    shutil.copytree(bundle, out)
    (out / "model_int8.tflite").write_bytes(b"this is not a flatbuffer " * 50)
    b = Bundle.load(out)
    b.add_file(b.entry("int8"))
    b.info["broken"] = True
    b.save()
    return out


_FACTS = ("import json, sys\nfrom edgelite.deploy.agent.facts import facts\nfrom edgelite.deploy.agent.layout import Layout\n"
          "print(json.dumps(facts(Layout(sys.argv[1]))))\n")


def agent_facts(directory: str = "~/edgelite", *prefix: str) -> dict[str, str]:
    """The agent's real `facts` of this machine (as a device's), run under `prefix` (e.g. setarch i686)."""
    import subprocess
    import sys

    out = subprocess.run([*prefix, sys.executable, "-c", _FACTS, directory], capture_output=True, text=True,
                         check=True, cwd=ROOT, env={**os.environ, "PYTHONPATH": str(ROOT)}).stdout
    return json.loads(out)
