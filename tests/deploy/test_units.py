"""The deploy pieces on their own: addresses, the systemd unit (checked by systemd-analyze), the device
agent's bundle verification, and its supervisor run as a real process (Restart=on-failure, start
limit, sd_notify READY/WATCHDOG, the watchdog killing a hung service). The agent's protocol and its
zipapp are in test_agent.py."""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import pytest

from edgelite.deploy.agent import supervisor as sv
from edgelite.deploy.agent.__main__ import handle
from edgelite.deploy.agent.bundles import verify_bundle
from edgelite.deploy.agent.health import health_url
from edgelite.deploy.agent.layout import Layout, atomic_symlink
from edgelite.deploy.agent.release import split_token
from edgelite.deploy.agent.unit import render_unit, verify_unit
from edgelite.deploy.package import compatible_platforms
from edgelite.jsonfile import read_json

from .rig import free_port, wait_healthz


def test_health_url():
    assert health_url("127.0.0.1:8080") == "http://127.0.0.1:8080/healthz"
    assert health_url("8080") == "http://127.0.0.1:8080/healthz"
    assert health_url("0.0.0.0:9000") == "http://127.0.0.1:9000/healthz"
    assert health_url("[::]:9000") == "http://[::1]:9000/healthz"


def test_compatible_platforms():
    tags = compatible_platforms("manylinux_2_36_aarch64")
    assert tags[0] == "manylinux_2_36_aarch64" and "manylinux_2_27_aarch64" in tags and "manylinux2014_aarch64" in tags
    assert "manylinux_2_37_aarch64" not in tags


@pytest.mark.skipif(shutil.which("systemd-analyze") is None, reason="systemd-analyze is not installed")
def test_unit_passes_systemd_analyze(tmp_path, sshd):
    user = sshd.user  # a regular account: systemd-analyze rightly flags User=nobody as unsafe
    root = tmp_path / "edgelite"
    (root / "current").mkdir(parents=True)
    run = root / "current" / "run"
    run.write_text("#!/bin/sh\nexit 0\n")
    run.chmod(0o755)
    unit = tmp_path / "edgelite.service"
    unit.write_text(render_unit(str(root), user))
    assert verify_unit(unit) is None, verify_unit(unit)
    text = unit.read_text()
    for line in ("Type=notify", "Restart=on-failure", f"User={user}", f"WatchdogSec={sv.WATCHDOG_SEC}",
                 "StandardOutput=journal", f'ExecStart=/bin/sh "{root}/current/run"', "WantedBy=multi-user.target",
                 "UMask=0077"):  # issue #22, hole 9: saved frames were world-readable under systemd
        assert line in text
    user_unit = render_unit(str(root), None)  # systemctl --user: no User=, default.target
    assert "User=" not in user_unit and "WantedBy=default.target" in user_unit
    unit.write_text(render_unit(str(root), "nobody"))
    assert "nobody" in (verify_unit(unit) or "")  # the check does catch a bad unit


def test_agent_verify_bundle(tiny_bundle, corrupt_bundle, tmp_path):
    assert verify_bundle(tiny_bundle) == []
    assert verify_bundle(corrupt_bundle) == ["model_int8.tflite fails its sha256 check (manifest "
                                                   f"{json.loads((tiny_bundle / 'edgelite.json').read_text())['models'][0]['sha256'][:12]}…)"]
    short = tmp_path / "short"
    shutil.copytree(tiny_bundle, short)
    (short / "model_int8.tflite").write_bytes(b"x")
    assert "bytes, the manifest says" in verify_bundle(short)[0]
    (short / "model_int8.tflite").unlink()
    assert verify_bundle(short) == ["model_int8.tflite is missing"]
    assert verify_bundle(tmp_path) == ["edgelite.json is missing"]


# ------------------------------------------------------------------------------------------ supervisor
def _layout(tmp_path: Path, run_script: str) -> Layout:
    lay = Layout(tmp_path / "dev")
    lay.ensure()
    rel = lay.releases / "r1"
    rel.mkdir()
    (rel / "run").write_text(run_script)
    (rel / "run").chmod(0o755)
    atomic_symlink("releases/r1", lay.current)
    return lay


def _supervise(lay: Layout, **constants) -> subprocess.Popen:
    """The agent's supervisor as a real process, with some of its timings shortened for the test."""
    sets = "".join(f"sv.{k} = {v!r}\n" for k, v in constants.items())
    code = (f"import sys\nimport edgelite.deploy.agent.supervisor as sv\nfrom edgelite.deploy.agent.__main__ import main\n"
            f"{sets}sys.exit(main(['supervise', '--dir', {str(lay.root)!r}]))")
    return subprocess.Popen([sys.executable, "-c", code], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                            start_new_session=True)


def _wait(cond, timeout=30.0):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        v = cond()
        if v:
            return v
        time.sleep(0.1)
    raise AssertionError("timed out")


def _stop(p: subprocess.Popen) -> None:
    if p.poll() is None:
        p.send_signal(signal.SIGTERM)
        try:
            p.wait(20)
        except subprocess.TimeoutExpired:
            p.kill()


def test_supervisor_restarts_on_failure_until_the_start_limit(tmp_path):
    lay = _layout(tmp_path, "#!/bin/sh\necho crashing\nexit 3\n")
    p = _supervise(lay, RESTART_SEC=0.1)
    try:
        assert p.wait(30) == 1
    finally:
        _stop(p)
    st = json.loads(lay.state.read_text())
    # like StartLimitBurst=5: five starts within the interval, the sixth is refused
    assert st["state"] == "failed" and [e["code"] for e in st["exits"]] == [3] * sv.START_LIMIT_BURST
    log = lay.log.read_text()
    assert log.count("crashing") == sv.START_LIMIT_BURST and "start limit hit" in log
    assert not lay.supervisor_pid.exists()


def test_supervisor_does_not_restart_a_clean_exit(tmp_path):
    lay = _layout(tmp_path, "#!/bin/sh\necho done\nexit 0\n")
    p = _supervise(lay)
    try:
        assert p.wait(30) == 0
    finally:
        _stop(p)
    assert json.loads(lay.state.read_text())["state"] == "exited"
    assert "not restarting (Restart=on-failure)" in lay.log.read_text()


def test_supervisor_watchdog_restarts_a_hung_service(tmp_path, tiny_bundle, video):
    """The real `edgelite run` under the supervisor: READY=1 and WATCHDOG=1 arrive over NOTIFY_SOCKET;
    frozen with SIGSTOP it stops pinging, and the supervisor aborts/kills it and starts it again."""
    port = free_port()
    run = textwrap.dedent(f"""\
        #!/bin/sh
        if [ -n "${{WATCHDOG_USEC:-}}" ] && [ -z "${{WATCHDOG_PID:-}}" ]; then export WATCHDOG_PID=$$; fi
        exec {sys.executable} -m edgelite run {tiny_bundle} --source {video} --loop --realtime --http 127.0.0.1:{port} --print-every 0
        """)
    lay = _layout(tmp_path, run)
    p = _supervise(lay, WATCHDOG_SEC=2, TIMEOUT_STOP_SEC=1, RESTART_SEC=0.2)
    try:
        st = _wait(lambda: (s := read_json(lay.state, {})) and s.get("ready") and s)
        assert st["state"] == "running" and "classifying" in (st.get("status") or "")
        wait_healthz(port)
        first = st["pid"]
        time.sleep(3)  # longer than WatchdogSec: the running loop keeps pinging
        assert read_json(lay.state)["pid"] == first
        os.kill(first, signal.SIGSTOP)  # hung: no more WATCHDOG=1
        st = _wait(lambda: (s := read_json(lay.state, {})) and s.get("pid") != first and s.get("ready") and s)
        assert st["restarts"] == 1
        wait_healthz(port)
        log = lay.log.read_text()
        assert "watchdog timeout" in log and "did not end on SIGABRT; killing it" in log
    finally:
        _stop(p)
    assert read_json(lay.state)["state"] == "stopped"
    assert not lay.supervisor_pid.exists()


def test_public_preview_needs_a_token(tiny_bundle):
    """--http beyond loopback without a token is refused before any connection is made."""
    r = subprocess.run([sys.executable, "-m", "edgelite", "deploy", str(tiny_bundle), "--host", "pi@127.0.0.1:1",
                        "--http", "0.0.0.0:8080"], capture_output=True, text=True, timeout=60)
    assert r.returncode == 2 and "--token" in r.stderr and "preflight" not in r.stdout


def test_release_keeps_the_preview_token_out_of_argv_and_release_json(tmp_path):
    """`--run-args "--token S"`: the token goes to the release's env file (0600, the unit's EnvironmentFile=) instead of
    --token to `edgelite run`, so the token is not in `ps` output nor in release.json."""
    lay = Layout(tmp_path / "dev")
    lay.ensure()
    (lay.bundles / "b1").mkdir()
    (lay.venvs / "e1").mkdir()
    (lay.venvs / "e1" / ".ready").touch()
    for run_args in ("--token s3cret --num-threads 2", "--num-threads 2"):
        reply = handle({"command": "release", "dir": str(lay.root), "bundle": "b1", "env": "e1", "source": "0",
                        "http": "0.0.0.0:8080", "run_args": run_args})
        assert reply["ok"], reply
        rid = reply["release"]
        assert rid == sorted(p.name for p in lay.releases.iterdir())[-1]
        run = lay.releases / rid / "run"
        rel = json.loads((lay.releases / rid / "release.json").read_text())
        exec_line = next(line for line in run.read_text().splitlines() if line.startswith("exec "))
        assert "s3cret" not in exec_line and "--token" not in exec_line and "--num-threads 2" in exec_line
        assert "s3cret" not in json.dumps(rel) and rel["run_args"] == ["--num-threads", "2"]
        env = lay.releases / rid / "env"
        assert "s3cret" not in run.read_text() and "EDGELITE_" + "SOURCE=" not in run.read_text()
        assert env.stat().st_mode & 0o777 == 0o600 and run.stat().st_mode & 0o777 == 0o700
        if "--token" in run_args:
            assert 'EDGELITE_TOKEN="s3cret"' in env.read_text() and rel["token"] is True
        else:
            assert "EDGELITE_TOKEN" not in env.read_text() and rel["token"] is False
    # the run script (outside systemd: the supervisor) exports what the env file holds to `edgelite run`
    # (its --token defaults to $EDGELITE_TOKEN, its --source to $EDGELITE_SOURCE)
    first = lay.releases / sorted(p.name for p in lay.releases.iterdir())[0] / "run"
    out = subprocess.run(["sh", "-c", "sed 's/^exec .*/env/' \"$1\" > \"$1.noexec\"; sh \"$1.noexec\"", "sh", str(first)],
                         capture_output=True, text=True, env={"PATH": os.environ["PATH"]})
    assert "EDGELITE_TOKEN=s3cret" in out.stdout.splitlines() and "EDGELITE_SOURCE=0" in out.stdout.splitlines(), out


def test_a_release_takes_its_token_from_the_request_and_quotes_hostile_values(tmp_path):
    """deploy --token-file / $EDGELITE_TOKEN and a fleet's edgelite_token arrive as the request's `token`; a
    camera URL with quotes, `$` and backquotes comes back byte for byte from the env file; a line break is
    refused in one line."""
    lay = Layout(tmp_path / "dev")
    lay.ensure()
    (lay.bundles / "b1").mkdir()
    (lay.venvs / "e1").mkdir()
    (lay.venvs / "e1" / ".ready").touch()
    source = "rtsp://admin:p\"a$(id)`x`'y\\z@cam/1?pwd=$HOME"
    reply = handle({"command": "release", "dir": str(lay.root), "bundle": "b1", "env": "e1", "source": source,
                    "http": "0.0.0.0:8080", "token": "730194826551093"})
    assert reply["ok"], reply
    env = lay.releases / reply["release"] / "env"
    out = subprocess.run(["sh", "-c", 'set -a; . "$1"; printf "%s\\n%s" "$EDGELITE_SOURCE" "$EDGELITE_TOKEN"', "sh",
                          str(env)], capture_output=True, text=True, env={"PATH": os.environ["PATH"]})
    assert out.stdout == f"{source}\n730194826551093", out
    bad = handle({"command": "release", "dir": str(lay.root), "bundle": "b1", "env": "e1", "source": "rtsp://cam/1\nX=1",
                  "http": "127.0.0.1:8080"})
    assert not bad["ok"] and "line break" in bad["error"] and "\n" not in bad["error"], bad


def test_split_token():
    assert split_token(["--token", "a b", "-k", "3"]) == (["-k", "3"], "a b")
    assert split_token(["--token=x"]) == ([], "x")
    assert split_token(["--top-k", "3"]) == (["--top-k", "3"], None)


def test_install_list_leaves_numpy_to_apt_when_kept(tmp_path):
    from edgelite.deploy.package import install_list

    for name in ("numpy-2.2.4-cp313-cp313-manylinux_2_17_aarch64.whl", "opencv_python_headless-5.0.0.93-cp37-abi3-x.whl",
                 "ai_edge_litert-2.3.0-cp313-cp313-y.whl"):
        (tmp_path / name).write_bytes(b"")
    assert [n.split("-")[0] for n in install_list(tmp_path, keep_system_numpy=True)] == ["ai_edge_litert",
                                                                                          "opencv_python_headless"]
    assert len(install_list(tmp_path, keep_system_numpy=False)) == 3


def test_the_device_gets_only_the_wheels_it_installs(tmp_path):
    from edgelite.deploy.package import install_list, pushed_house

    house = tmp_path / "cp313-x"
    house.mkdir()
    for name in ("numpy-2.2.4-cp313-cp313-x.whl", "opencv_python_headless-5.0.0.93-cp37-abi3-x.whl"):
        (house / name).write_bytes(b"w")
    assert pushed_house(house, install_list(house, keep_system_numpy=False)) == house
    kept = pushed_house(house, install_list(house, keep_system_numpy=True))
    assert kept != house and sorted(p.name for p in kept.glob("*.whl")) == ["opencv_python_headless-5.0.0.93-cp37-abi3-x.whl"]
    assert pushed_house(house, install_list(house, keep_system_numpy=True)) == kept  # made once


def test_pyproject_license_is_an_spdx_string_and_the_wheel_still_builds_offline():
    """Issue 25 (smaller): `project.license = { text = ... }` drew setuptools' deprecation boxes in `make
    setup`. It is the PEP 639 SPDX string now; deploy's offline wheel build (no build isolation, this
    environment's setuptools, however old) still works and the wheel names its license."""
    import zipfile

    import tomllib

    from edgelite.deploy.package import build_wheel, project_root

    project = tomllib.loads((project_root() / "pyproject.toml").read_text())["project"]
    assert project["license"] == "Apache-2.0"
    with zipfile.ZipFile(build_wheel()) as z:
        meta = z.read(next(n for n in z.namelist() if n.endswith(".dist-info/METADATA"))).decode()
    assert "License: Apache-2.0" in meta or "License-Expression: Apache-2.0" in meta
