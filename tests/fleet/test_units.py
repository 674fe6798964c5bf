"""The fleet's pure parts, without devices: batch plans, flag checks, the per-host plan from real probe
output, the summary, and the one-line errors (a missing ansible-core names the extra to install)."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from edgelite.errors import EXIT_FLEET, EXIT_USAGE
from edgelite.fleet import plan
from edgelite.fleet.errors import FleetError
from edgelite.fleet.rollout import FleetOptions, format_summary, max_fail_percent, serial_plan, summarize
from edgelite.fleet.status import format_rows, row_from

REPO = Path(__file__).resolve().parents[2]


def opts(**kw) -> FleetOptions:
    return FleetOptions(inventory=Path("hosts.ini"), **kw)


def test_canary_then_batches_is_ansibles_serial_list():
    assert serial_plan(opts(canary=1, serial="2")) == [1, 2]
    assert serial_plan(opts(canary=2, serial="25%")) == [2, "25%"]
    assert serial_plan(opts(canary=0, serial="100%")) == ["100%"]
    assert max_fail_percent("0%") == 0 and max_fail_percent("10") == 10


@pytest.mark.parametrize("kw, flag", [({"serial": "0"}, "--serial"), ({"serial": "two"}, "--serial"),
                                      ({"serial": "150%"}, "--serial"), ({"canary": -1}, "--canary")])
def test_bad_batch_flags_are_usage_errors(kw, flag):
    with pytest.raises(FleetError) as e:
        serial_plan(opts(**kw))
    assert e.value.exit_code == EXIT_USAGE and flag in str(e.value)


def test_bad_max_fail_is_a_usage_error():
    with pytest.raises(FleetError, match="--max-fail 120%"):
        max_fail_percent("120%")


def _probe() -> dict:
    """This machine's real facts from the agent (as a device's)."""
    from tests.deploy.rig import agent_facts

    return agent_facts("~/edgelite-fleet-unit")


def test_the_plan_is_deploys_names_and_changes_with_what_runs(tmp_path, monkeypatch):
    """Real probe, a real (tiny) bundle folder: venv id, folders and release key as `edgelite deploy` has them."""
    from tests.deploy.bundlekit import write_video

    pytest.importorskip("cv2")
    video = write_video(tmp_path / "clip.avi")
    shared = _shared(monkeypatch)
    host = {"facts": _probe(), "dir": "~/edgelite-fleet-unit", "source": str(video), "http": "127.0.0.1:8081",
            "print_every": 5}
    p = plan.host_plan(shared, "pi", host)
    assert not p["problems"], p["problems"]
    assert p["release"]["source_is_file"] and p["media"]["dest"].endswith("-clip.avi")
    assert p["unit"] == "edgelite-" + __import__("hashlib").sha256(p["root"].encode()).hexdigest()[:8]
    assert p["release"]["meta"]["key"] == p["key"]
    # the same settings -> the same key (a second rollout leaves the host alone); any change -> another
    assert plan.host_plan(shared, "pi", dict(host))["key"] == p["key"]
    for change in ({"http": "127.0.0.1:8082"}, {"threads": 2}, {"token_sha256": "ab" * 32}, {"format": "fp16"}):
        assert plan.host_plan(shared, "pi", {**host, **change})["key"] != p["key"], change


def test_a_host_is_refused_with_what_to_do(monkeypatch):
    shared = _shared(monkeypatch)
    p = plan.host_plan(shared, "pi", {"facts": _probe(), "source": "/dev/video7"})
    assert any("no camera at /dev/video7" in x for x in p["problems"]) and "key" not in p
    p = plan.host_plan(shared, "pi", {"facts": _probe(), "source": "/x.avi", "http": "0.0.0.0:8080"})
    assert any("edgelite_token" in x for x in p["problems"])
    p = plan.host_plan(shared, "pi", {"facts": {**_probe(), "disk_free_kb": "10240"}, "source": "/x.avi"})
    assert p["problems"][0].startswith("not enough disk: the deploy needs ") and ", 10 MB free: " in p["problems"][0]
    p = plan.host_plan(shared, "pi", {"facts": {}, "source": "0"})
    assert p["problems"] == ["device probe failed: the agent's facts are incomplete (it did not finish)"]


def _shared(monkeypatch):
    """A Shared without building anything: the wheel stand-in is a real file."""
    from edgelite.deploy import package
    from edgelite.deploy.artifacts import Builder
    from edgelite.deploy.plan import BundleInfo

    s = plan.Shared.__new__(plan.Shared)
    b = s.builder = Builder.__new__(Builder)
    b.package, b.offline, b.log, b.houses = package, False, print, {}
    b.wheel = Path(__file__)  # any file: only its bytes and name are hashed
    b.constraints = package.constraints_file()
    s.bundle = BundleInfo("0123456789abcdef", REPO, {"models": [{"name": "int8", "sha256": "ab" * 32}]})
    s.archive = Path("bundle-0123456789abcdef.tar")  # not built: the plan only names it
    return s


def test_the_bundle_travels_as_one_archive_of_its_files(tmp_path, monkeypatch):
    """The role pushes ONE file per host (a few SSH round trips, not a few per file); it unpacks to the folder."""
    import tarfile

    from edgelite.deploy.plan import BundleInfo

    monkeypatch.setenv("EDGELITE_CACHE", str(tmp_path / "cache"))
    src = tmp_path / "bundle"
    (src / "imx500").mkdir(parents=True)
    (src / "edgelite.json").write_text("{}")
    (src / "imx500" / "packerOut.zip").write_bytes(b"\x00" * 100)
    (src / "model.tflite").symlink_to(src / "edgelite.json")  # sent as the file it names, as a folder copy
    tar = plan.bundle_archive(BundleInfo("0123456789abcdef", src, {}))
    assert tar.name == "bundle-0123456789abcdef.tar"
    with tarfile.open(tar) as t:
        members = {m.name: m for m in t.getmembers()}
        assert sorted(members) == ["edgelite.json", "imx500/packerOut.zip", "model.tflite"]
        assert all(m.isfile() and m.uid == 0 and not m.uname for m in members.values())
        assert t.extractfile("imx500/packerOut.zip").read() == b"\x00" * 100


def test_the_venv_files_travel_as_one_archive_unpacked_where_the_plan_puts_them(tmp_path, monkeypatch):
    """The edgelite wheel, the constraints, the installer and --offline's wheelhouse: one tar that, unpacked in
    the device's wheel folder, puts every file at the path the agent's venv request names; built once for
    hosts with the same wheels."""
    import tarfile

    monkeypatch.setenv("EDGELITE_CACHE", str(tmp_path / "cache"))
    local = tmp_path / "local"
    (local / "house" / "cp313-x").mkdir(parents=True)
    files = {"wheel": local / "edgelite-0.1.0-py3-none-any.whl", "constraints": local / "c.txt",
             "installer": local / "uv-0.13.9-py3-none-any.whl"}
    for i, p in enumerate(files.values()):
        p.write_bytes(b"w" * (i + 1))
    for name in ("numpy-2.2.4-cp313-cp313-manylinux_2_17_aarch64.whl", "paho_mqtt-2.1.0-py3-none-any.whl"):
        (local / "house" / "cp313-x" / name).write_bytes(name.encode())
    root = "/home/pi/edgelite"
    host = {"root": root, "wheel": {"src": str(files["wheel"]), "dest": f"{root}/wheels/edgelite/ab12/{files['wheel'].name}"},
            "constraints": {"src": str(files["constraints"]), "dest": f"{root}/wheels/constraints-cd34.txt"},
            "installer": {"src": str(files["installer"]), "dest": f"{root}/wheels/tools/{files['installer'].name}"},
            "deps": {"src": f"{local / 'house' / 'cp313-x'}/", "dest": f"{root}/wheels/deps/cp313-x"}}
    got = plan.wheels_archive(host)
    assert got["dest"] == f"{root}/wheels"
    device = tmp_path / "device"
    with tarfile.open(got["archive"]) as t:
        t.extractall(device, filter="data")
    want = {host[k]["dest"]: files[k].read_bytes() for k in files} | {
        f"{root}/wheels/deps/cp313-x/{p.name}": p.read_bytes() for p in (local / "house" / "cp313-x").iterdir()}
    landed = {f"{root}/wheels/{p.relative_to(device)}": p.read_bytes() for p in device.rglob("*") if p.is_file()}
    assert landed == want
    assert plan.wheels_archive(dict(host))["archive"] == got["archive"]  # the same wheels: the same file, not rebuilt
    assert plan.wheels_archive({"root": root, "wheel": None, "constraints": None, "installer": None, "deps": None}) is None


def test_summary_says_who_runs_what():
    report = {"hosts": {
        "a": {"result": "deployed", "before": "r1", "after": "r2", "spans": {"edgelite rollout (x)": [10.0, 22.5]},
              "recap": {"changed": 5}},
        "b": {"result": "rolled back", "before": "r1", "after": "r1", "error": "release r2 was not healthy"},
        "c": {"result": "planned", "before": "r1"},
        "d": {"unreachable": True, "error": "ssh: connect refused"},
        "localhost": {"result": "planned"}}, "seconds": 30}
    s = summarize(report, "edgelite rollout")
    by = {r["host"]: r for r in s["hosts"]}
    assert [r["result"] for r in s["hosts"]] == ["deployed", "rolled back", "not started", "unreachable"]
    assert by["a"]["seconds"] == 12.5 and by["c"]["after"] == "r1" and not s["ok"]
    assert s["releases"] == {"r2": ["a"], "r1": ["b", "c"], "nothing": ["d"]}
    text = format_summary(s)
    assert "r1 -> r2" in text and "b: rolled back: release r2 was not healthy" in text


def test_status_row_and_table():
    row = row_from("pi", {"unreachable": True, "error": "timeout"})
    assert row["reachable"] is False and row["service"] == "unreachable"
    assert row_from("pi", {"deployed": False})["service"] == "nothing deployed"
    assert format_rows([row]).splitlines()[1].split()[:2] == ["pi", "no"]


def test_status_table_shows_which_model_each_device_runs_and_why():
    """Issue #24: with `--format auto` each device picks its own model; the fleet table says what and why."""
    def report(pick):
        return {"deployed": True, "status": {"current": {"id": "r1"}, "state": {"state": "running", "active": True},
                                             "health": {"http": 200, "body": {"status": "ok", "model": pick["model"],
                                                                              "pick": pick}}}}

    a = row_from("pi4", report({"model": "int8", "threads": 4, "how": "cached",
                                "why": "fastest of 6 measured: p50 31 ms; next fp16 x4 44 ms"}))
    b = row_from("x86", report({"model": "onnx_int8", "threads": 1, "how": "trial",
                                "why": "fastest of 6 measured: p50 3.58 ms; next int8 x1 4.11 ms"}))
    assert a["pick"] == "int8 x4, cached: fastest of 6 measured: p50 31 ms; next fp16 x4 44 ms"
    table = format_rows([a, b]).splitlines()
    assert table[0].split()[-1] == "pick" and "onnx_int8 x1, trial: fastest of 6 measured" in table[2]


def test_fleet_without_ansible_names_the_extra(tmp_path):
    site = tmp_path / "site"
    site.mkdir()
    (site / "sitecustomize.py").write_text("import sys\nsys.modules['ansible'] = None\n")
    env = {"PATH": "/usr/bin:/bin", "HOME": str(tmp_path), "PYTHONPATH": f"{site}:{REPO}"}
    p = subprocess.run([sys.executable, "-m", "edgelite", "fleet", "status", "-i", "hosts.ini"], capture_output=True,
                       text=True, env=env, cwd=tmp_path, timeout=60)
    assert p.returncode == EXIT_USAGE
    assert p.stderr.strip() == "edgelite fleet: error: ansible is not installed: pip install 'edgelite[fleet]'"


def test_exit_code_nine_is_in_the_table():
    from edgelite.errors import EXIT_CODES

    assert EXIT_FLEET == 9 and "fleet" in EXIT_CODES[EXIT_FLEET]


def test_a_hosts_trust_list_is_in_its_plan_and_must_vouch_for_the_bundle(monkeypatch, tmp_path):
    """edgelite_allowed_signers becomes the plan's `trust` request (the role sends it before the push); a list
    that is malformed, or refuses the bundle being rolled out, refuses the host before anything is touched."""
    import shutil

    from edgelite.deploy.plan import BundleInfo
    from edgelite.signature import sign, trust_list
    from tests.deploy.test_agent import mini_bundle

    if not shutil.which("ssh-keygen"):
        pytest.skip("needs ssh-keygen")
    key = tmp_path / "release"
    subprocess.run(["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-C", "release", "-f", str(key)], check=True)
    signers = trust_list([f"{key}.pub"])
    shared = _shared(monkeypatch)
    bundle = mini_bundle(tmp_path / "bundle")
    shared.bundle = BundleInfo("0123456789abcdef", bundle, shared.bundle.manifest)
    host = {"facts": _probe(), "dir": "~/edgelite-fleet-unit", "source": __file__}  # a file: looped
    assert plan.host_plan(shared, "pi", host)["requests"]["trust"] is None  # no list: the device's stays
    p = plan.host_plan(shared, "pi", {**host, "allowed_signers": signers})
    assert p["problems"] == [f"edgelite_allowed_signers: {bundle} is not signed (no edgelite.json.sig) and only "
                             "bundles signed by a key in" + p["problems"][0].split(" key in", 1)[1]]
    sign(bundle, key)
    p = plan.host_plan(shared, "pi", {**host, "allowed_signers": signers})
    assert not p["problems"] and p["requests"]["trust"] == {"command": "trust", "dir": p["root"], "signers": signers}
    p = plan.host_plan(shared, "pi", {**host, "allowed_signers": "release ssh-ed25519"})
    assert "edgelite_allowed_signers, line 1: not `PRINCIPALS [OPTIONS] KEYTYPE BASE64`" in p["problems"][0]
