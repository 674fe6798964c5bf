"""The device agent as shipped: one zipapp of standard-library code that answers one JSON request with one
JSON reply, runs detached jobs the workstation follows, and refuses bad requests with the exit-code table.

The zipapp runs here under `python3 -I` (isolated: no PYTHONPATH, no site-packages), so nothing but what
is inside it can be imported — as on a device before any venv exists."""

from __future__ import annotations

import ast
import json
import os
import subprocess
import sys
import time
from pathlib import Path

import pytest

from edgelite import jsonfile
from edgelite.bundle import Bundle, BundleError, ChecksumError
from edgelite.deploy.agent import __doc__ as PROTOCOL_DOC
from edgelite.deploy.agent.__main__ import COMMANDS, REQUIRED, handle
from edgelite.deploy.agent.layout import Layout
from edgelite.deploy.errors import DeployError
from edgelite.errors import EXIT_CHECKSUM, EXIT_REMOTE, EXIT_USAGE
from edgelite.manifest import MANIFEST, sha256_file
from edgelite.remote import agent as package  # the zipapp's builder

PYTHON = "/usr/bin/python3" if Path("/usr/bin/python3").exists() else sys.executable


def mini_bundle(root: Path) -> Path:
    """A bundle with one (fake) model file whose size and sha256 are in the manifest."""
    root.mkdir(parents=True)
    model = root / "model_int8.tflite"
    model.write_bytes(bytes(range(256)) * 8)
    manifest = {"schema": 1, "labels": ["a", "b"], "input": {"height": 8, "width": 8},
                "models": [{"name": "int8", "path": model.name, "format": "tflite", "precision": "int8",
                            "sha256": sha256_file(model), "bytes": model.stat().st_size}]}
    jsonfile.write_json(root / MANIFEST, manifest)
    return root


def flip_a_byte(path: Path) -> None:
    data = bytearray(path.read_bytes())
    data[len(data) // 2] ^= 0xFF
    path.write_bytes(bytes(data))


@pytest.fixture()
def pyz(tmp_path, monkeypatch) -> Path:
    monkeypatch.setenv("EDGELITE_CACHE", str(tmp_path / "cache"))
    return package.build_agent()


def call(pyz: Path, request, cwd: Path) -> tuple[int, dict]:
    """One agent call as the workstation makes it: JSON on stdin; exactly one JSON line comes back."""
    text = request if isinstance(request, str) else json.dumps(request)
    r = subprocess.run([PYTHON, "-I", str(pyz)], input=text, capture_output=True, text=True, timeout=120,
                       cwd=cwd, env={"PATH": os.environ["PATH"], "HOME": str(cwd)})
    lines = r.stdout.splitlines()
    assert len(lines) == 1, (r.stdout, r.stderr)
    return r.returncode, json.loads(lines[0])


def test_zipapp_holds_only_the_agent_and_is_cached(pyz):
    import zipfile

    names = {n for n in zipfile.ZipFile(pyz).namelist() if not n.endswith("/")}
    modules = {f"edgelite/deploy/agent/{p.name}" for p in (package.agent_files()[0] / package.AGENT_PACKAGE).glob("*.py")}
    assert names == {"__main__.py", *package.AGENT_SUPPORT, *modules}
    mtime = pyz.stat().st_mtime_ns
    assert package.build_agent() == pyz and pyz.stat().st_mtime_ns == mtime  # same sources: not rebuilt


def test_zipapp_answers_in_isolation(pyz, tmp_path):
    good = mini_bundle(tmp_path / "good")
    code, reply = call(pyz, {"command": "verify", "path": str(good)}, tmp_path)
    assert code == 0 and reply == {"ok": True, "problems": [], "protocol": 1}
    flip_a_byte(good / "model_int8.tflite")
    code, reply = call(pyz, {"command": "verify", "path": str(good)}, tmp_path)
    assert code == EXIT_CHECKSUM == reply["exit_code"] and reply["ok"] is False
    assert reply["problems"] == [f"model_int8.tflite fails its sha256 check (manifest "
                                 f"{json.loads((good / MANIFEST).read_text())['models'][0]['sha256'][:12]}…)"]
    code, reply = call(pyz, {"command": "status", "dir": str(tmp_path / "dev")}, tmp_path)
    assert code == 0 and reply["ok"] and reply["current"] is None and reply["releases"] == []
    code, reply = call(pyz, {"command": "facts", "dir": str(tmp_path / "dev")}, tmp_path)
    assert code == 0 and reply["facts"]["python_version"].count(".") == 2 and reply["facts"]["probe_end"] == "1"


def test_the_agent_runs_from_a_copy_unpacked_once_where_its_bytecode_is_kept(pyz, tmp_path):
    """Python caches no bytecode for a zip: the agent unpacks itself beside the archive once (keyed by its sha256)
    and runs from there, so the next request imports .pyc files instead of compiling the agent again."""
    import hashlib
    import shutil

    dev = tmp_path / "dev"
    dev.mkdir()
    shutil.copy2(pyz, dev / "agent.pyz")
    for _ in range(2):
        code, reply = call(dev / "agent.pyz", {"command": "status", "dir": str(dev)}, tmp_path)
        assert code == 0 and reply["ok"], reply
    key = hashlib.sha256((dev / "agent.pyz").read_bytes()).hexdigest()[:16]
    (unpacked,) = (dev / ".agent").iterdir()
    assert unpacked.name == key
    # bytecode exists only where the agent imported from the copy (zipimport writes none) ...
    (pyc,) = (unpacked / "edgelite" / "deploy" / "agent" / "__pycache__").glob("status.*.pyc")
    mtime = pyc.stat().st_mtime_ns
    code, reply = call(dev / "agent.pyz", {"command": "status", "dir": str(dev)}, tmp_path)
    assert code == 0 and reply["ok"] and pyc.stat().st_mtime_ns == mtime  # ... and is reused, not compiled again


@pytest.mark.parametrize("request_text,says", [
    ("not json", "not JSON"),
    ('["status"]', 'a JSON object with a "command"'),
    ('{"command": "deploy-everything"}', "unknown command 'deploy-everything'; one of facts, verify"),
    ('{"command": "release", "bundle": "b"}', "the release request lacks env, source, http"),
    ('{"command": "service", "action": "reboot"}', "expected start or stop"),
])
def test_bad_requests_are_refused_with_exit_2(pyz, tmp_path, request_text, says):
    request_text = request_text.replace('"command"', f'"dir": "{tmp_path}/dev", "command"', 1) \
        if request_text.startswith("{") else request_text
    code, reply = call(pyz, request_text, tmp_path)
    assert code == EXIT_USAGE == reply["exit_code"] and reply["ok"] is False
    assert says in reply["error"]


def test_a_detached_commit_is_followed_to_its_reply(pyz, tmp_path):
    """`detach` answers at once with the job; `wait` hands over its progress lines and then its reply —
    the way `edgelite deploy` follows the switch (the job relaunches the zipapp itself)."""
    root = tmp_path / "dev"
    lay = Layout(root)
    lay.ensure()
    (lay.releases / "r1").mkdir()
    jsonfile.write_json(lay.releases / "r1" / "release.json", {"id": "r1", "http": "127.0.0.1:1"})
    code, reply = call(pyz, {"command": "configure", "dir": str(root), "mode": "none", "user": "pi"}, tmp_path)
    assert code == 0 and reply["mode"] == "none"
    code, started = call(pyz, {"command": "commit", "dir": str(root), "release": "r1", "detach": True}, tmp_path)
    assert code == 0 and started["job"] == "commit-r1" and started["pid"] > 0
    lines, offset = [], 0
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        code, w = call(pyz, {"command": "wait", "dir": str(root), "job": "commit-r1", "offset": offset,
                             "timeout": 2}, tmp_path)
        assert code == 0 and w["ok"], w
        lines += w["output"]
        offset = w["offset"]
        if w["done"]:
            break
    assert w["done"] and w["reply"]["ok"] and w["reply"]["release"] == "r1"
    assert "switch: current -> releases/r1 (was nothing)" in lines
    assert lay.current_rid() == "r1" and jsonfile.read_json(lay.run / "commit-r1.json")["ok"] is True
    _, again = call(pyz, {"command": "wait", "dir": str(root), "job": "commit-r1", "offset": offset}, tmp_path)
    assert again["done"] and again["output"] == []  # nothing is handed over twice


def test_wait_reports_a_job_that_died(tmp_path):
    lay = Layout(tmp_path / "dev")
    lay.ensure()
    (lay.run / "venv-x.pid").write_text(f"{os.getpid()}\n")  # alive, but not that job: pid reuse is not trusted
    (lay.run / "venv-x.log").write_text("creating venv\n")
    reply = handle({"command": "wait", "dir": str(lay.root), "job": "venv-x"})
    assert reply["ok"] is False and reply["exit_code"] == EXIT_REMOTE and "died without a reply" in reply["error"]
    assert reply["output"] == ["creating venv"]


@pytest.mark.parametrize("job", ["../../outside", "/etc/passwd", "..", "a/b"])
def test_wait_refuses_a_job_name_outside_its_folder(tmp_path, job):
    """Issue #22, hole 11: `wait` read run/<job>.log for any name, `../../x` included."""
    lay = Layout(tmp_path / "dev" / "edgelite")
    lay.ensure()
    (tmp_path / "outside.log").write_text("a secret of the device user\n")
    reply = handle({"command": "wait", "dir": str(lay.root), "job": job, "timeout": 0})
    assert reply["ok"] is False and reply["exit_code"] == EXIT_USAGE and "bad job name" in reply["error"], reply
    assert "secret" not in json.dumps(reply)


def test_protocol_docstring_names_every_command_and_its_fields():
    table = {ln.split()[0]: ln for ln in PROTOCOL_DOC.splitlines() if ln and not ln.startswith((" ", "="))}
    for command in COMMANDS:
        assert command in table, f"{command} is not in the protocol table of edgelite/deploy/agent/__init__.py"
        for field in REQUIRED.get(command, ()):
            assert field in table[command], (command, field)
    assert "supervise --dir DIR" in PROTOCOL_DOC


def _imports(path: Path):
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.Import):
            yield from (a.name for a in node.names)
        elif isinstance(node, ast.ImportFrom):
            assert node.level == 0, f"{path}: relative import"
            yield node.module


def test_agent_imports_only_the_standard_library_and_itself():
    """What the zipapp holds is all it may import (at any depth): a device has no edgelite installed."""
    base, files = package.agent_files()
    shipped = {".".join(f.relative_to(base).with_suffix("").parts).removesuffix(".__init__") for f in files}
    problems = [f"{f.relative_to(base)} imports {m}" for f in files for m in _imports(f)
                if m.split(".")[0] not in sys.stdlib_module_names and m not in shipped
                and m.rpartition(".")[0] not in shipped]
    assert not problems, problems


def test_write_json_is_atomic_and_leaves_no_temp_file(tmp_path):
    p = tmp_path / "state.json"
    jsonfile.write_json(p, {"a": 1})
    with pytest.raises(TypeError):
        jsonfile.write_json(p, {"a": object()})
    with pytest.raises(OSError):
        jsonfile.write_text_atomic(tmp_path, "x")  # rename over a directory fails
    assert jsonfile.read_json(p) == {"a": 1} and sorted(x.name for x in tmp_path.iterdir()) == ["state.json"]
    assert p.stat().st_mode & 0o777 == 0o644
    assert jsonfile.read_json(tmp_path / "missing.json", {}) == {}


def test_a_corrupt_bundle_is_a_checksum_error_with_exit_4(tmp_path):
    from edgelite.deploy.artifacts import checked_bundle as check_bundle

    root = mini_bundle(tmp_path / "b")
    Bundle.load(root).verify()
    check_bundle(root)
    flip_a_byte(root / "model_int8.tflite")
    with pytest.raises(ChecksumError) as e:
        Bundle.load(root).verify()
    assert e.value.exit_code == EXIT_CHECKSUM
    with pytest.raises(DeployError) as d:
        check_bundle(root)
    assert d.value.exit_code == EXIT_CHECKSUM and "fails its checksum" in str(d.value)
    (root / "model_int8.tflite").unlink()
    with pytest.raises(BundleError) as e:
        Bundle.load(root).verify()
    assert type(e.value) is BundleError and e.value.exit_code == EXIT_USAGE


def test_bench_requests_find_the_install_run_it_without_a_shell_and_clean_up(pyz, tmp_path):
    """prepare-bench -> bench -> clean-bench, as `edgelite bench --host` sends them (the zipapp, the system
    python3): an `edgelite` on the PATH runs in the work folder with the paths as given (`~/` expanded, no
    shell); its JSON is the reply's result; a failed bench is exit 8; only a work folder is ever removed."""
    fake = tmp_path / "bin"
    fake.mkdir()
    (fake / "edgelite").write_text('#!/bin/sh\necho "$PWD|$*" > "$HOME/argv"\necho "progress 50%" >&2\n'
                                   'case "$2" in fail) echo "no bundle there" >&2; exit 2;; esac\n'
                                   'echo \'{"rows": [], "targets": []}\'\n')
    (fake / "edgelite").chmod(0o755)
    env = {"PATH": f"{fake}:{os.environ['PATH']}", "HOME": str(tmp_path)}

    def send(request: dict) -> tuple[int, dict, str]:
        r = subprocess.run([PYTHON, "-I", str(pyz)], input=json.dumps({"dir": str(tmp_path / "dev"), **request}),
                           capture_output=True, text=True, timeout=120, cwd=tmp_path, env=env)
        return r.returncode, json.loads(r.stdout), r.stderr

    code, prep, _ = send({"command": "prepare-bench"})
    work = Path(prep["work"])
    assert code == 0 and work.is_dir() and work.name.startswith("edgelite-bench.")
    assert prep["install"] == "path" and prep["edgelite"] == str(fake / "edgelite") and prep["bundle"] is None
    code, reply, err = send({"command": "bench", "work": str(work), "targets": ["t0/b", "~/my bundle"],
                             "args": ["--formats", "int8;rm -rf x"], "pipeline": "0"})
    assert code == 0 and reply["result"] == {"rows": [], "targets": []} and "progress 50%" in err
    assert (tmp_path / "argv").read_text() == f"{work}|bench t0/b {tmp_path}/my bundle --formats int8;rm -rf x " \
                                              "--pipeline 0 --json -\n"
    code, reply, err = send({"command": "bench", "work": str(work), "targets": ["fail"]})
    assert code == EXIT_REMOTE == reply["exit_code"] and "exit code 2" in reply["error"] and "no bundle there" in err
    code, reply, _ = send({"command": "bench", "work": str(work), "targets": ["-rf"]})
    assert code == EXIT_USAGE and "as an option" in reply["error"]
    for not_ours in ("/etc", str(tmp_path), "/tmp/../etc/edgelite-bench.x"):
        code, reply, _ = send({"command": "clean-bench", "work": not_ours})
        assert code == EXIT_USAGE and "not a bench work folder" in reply["error"], not_ours
    assert send({"command": "clean-bench", "work": str(work)})[1]["removed"] == str(work) and not work.exists()
    assert send({"command": "clean-bench", "work": str(work)})[1]["removed"] is None
