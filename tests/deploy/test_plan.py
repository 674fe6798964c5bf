"""One deploy plan for `edgelite deploy` and `edgelite fleet`: the same inputs give the same plan, and
neither front end (nor the Ansible role) writes a device path, a default or a release field itself."""

from __future__ import annotations

import ast
import dataclasses
import json
import re
from pathlib import Path

import pytest

from edgelite.deploy import plan as planning
from edgelite.deploy.agent import DEFAULT_HTTP, HEALTH_TIMEOUT, PRINT_EVERY
from edgelite.deploy.deploy import DeployOptions
from edgelite.deploy.preflight import Facts
from edgelite.fleet import plan as fleet_plan
from edgelite.remote import layout
from edgelite.remote.connection import Connection
from edgelite.remote.target import parse_target

from .rig import agent_facts

REPO = Path(__file__).resolve().parents[2]
#: the front ends: they execute the plan and must not re-encode it
FRONT_ENDS = [REPO / "edgelite/deploy/deploy.py", REPO / "edgelite/deploy/cli.py",
              *sorted((REPO / "edgelite/fleet").glob("*.py"))]
ROLE = sorted((REPO / "edgelite/fleet/ansible").rglob("*.yml"))
#: the device folder's names (edgelite.remote.layout): a front end joins none of them to a path itself
PATH_NAMES = {layout.AGENT, layout.BUNDLES, layout.INCOMING, layout.WHEELS, layout.VENVS, layout.MEDIA,
              layout.FRAMES, layout.RELEASES, layout.CURRENT, layout.RELEASE_JSON, layout.SERVICE_JSON}
#: the release record's fields: only the plan writes them
RELEASE_FIELDS = {"source_is_file", "deployed_by", "bundle_path", "fleet_key"}
#: a layout name joined to a device folder (f"{root}/media/...": the constant after the value starts "/media"),
#: or the agent's or the incoming folder's name anywhere
_NAMES = "|".join(map(re.escape, PATH_NAMES))
DEVICE_PATH = re.compile(rf"^/({_NAMES})(/|$)|{re.escape(layout.AGENT)}|{re.escape('/' + layout.INCOMING)}")
DEFAULT_STRINGS = {DEFAULT_HTTP, layout.DEFAULT_DIR}
DEFAULT_NUMBERS = {HEALTH_TIMEOUT, PRINT_EVERY, 8080}


def _strings(tree: ast.AST):
    """(line, text) of every string constant, f-string parts included."""
    for node in ast.walk(tree):
        if isinstance(node, ast.Constant) and isinstance(node.value, str):
            yield node.lineno, node.value


def _docstrings(tree: ast.AST) -> set[int]:
    """Lines of docstrings (prose may name a folder)."""
    out = set()
    for node in ast.walk(tree):
        if isinstance(node, (ast.Module, ast.ClassDef, ast.FunctionDef)) and ast.get_docstring(node, clean=False):
            first = node.body[0]
            out.update(range(first.lineno, first.end_lineno + 1))
    return out


@pytest.mark.parametrize("path", FRONT_ENDS, ids=lambda p: str(p.relative_to(REPO)))
def test_front_ends_encode_no_device_path_default_or_release_field(path):
    tree = ast.parse(path.read_text())
    docs = _docstrings(tree)
    bad = []
    for line, text in _strings(tree):
        if line in docs:
            continue
        if any(d in text for d in DEFAULT_STRINGS):
            bad.append(f"{line}: default {text!r}")
        elif DEVICE_PATH.search(text):
            bad.append(f"{line}: device path {text!r}")
        elif text in RELEASE_FIELDS:
            bad.append(f"{line}: release field {text!r}")
    for node in ast.walk(tree):
        if isinstance(node, ast.Constant) and type(node.value) in (int, float) and node.value in DEFAULT_NUMBERS:
            bad.append(f"{node.lineno}: default {node.value!r}")
    assert not bad, f"{path.relative_to(REPO)} re-encodes what edgelite.deploy.plan owns:\n" + "\n".join(bad)


@pytest.mark.parametrize("path", ROLE, ids=lambda p: str(p.relative_to(REPO)))
def test_the_role_encodes_no_device_path_or_default(path):
    bad = []
    for n, line in enumerate(path.read_text().splitlines(), 1):
        code = line.split("#", 1)[0] if not line.lstrip().startswith("- '") else line
        if any(d in code for d in DEFAULT_STRINGS):
            bad.append(f"{n}: {line.strip()}")
        if re.search(rf"/({_NAMES})\b", code):
            bad.append(f"{n}: {line.strip()}")
        if re.search(r"default\((90|30|8080)\b|:\s*(90|30)\s*$", code):
            bad.append(f"{n}: {line.strip()}")
    assert not bad, f"{path.relative_to(REPO)} writes a path or default the plan owns:\n" + "\n".join(bad)


@pytest.fixture(scope="module")
def facts():
    return Facts(agent_facts("~/edgelite-plan-unit"))


def test_deploy_and_fleet_make_the_same_plan(facts, tmp_path):
    """`edgelite deploy`'s options and a fleet host's inventory values for the same choices -> the same plan."""
    clip = tmp_path / "clip.avi"
    clip.write_bytes(b"not really a video")
    art = planning.Artifacts(wheel=Path(__file__), constraints=None, house=None, env="e1")
    bundle = planning.BundleInfo("0123456789abcdef", tmp_path, {"models": [{"name": "int8", "sha256": "ab" * 32}]})
    conn = Connection(parse_target("pi@cam1"), dir="~/edgelite-plan-unit")
    for choice in ({}, {"source": str(clip), "http": "127.0.0.1:8081", "print_every": 5, "format": "int8",
                        "health_timeout": 30.0}):
        opts = DeployOptions(bundle=tmp_path, connection=conn, **choice)
        host = {"dir": "~/edgelite-plan-unit", "source": "", "http": "", "print_every": "", "health_timeout": "",
                **{k: str(v) for k, v in choice.items()}}
        assert fleet_plan.settings(host) == opts.settings()
        by_deploy = planning.make_plan(facts, opts.settings(), bundle, art)
        by_fleet = planning.make_plan(facts, fleet_plan.settings(host), bundle, art)
        assert by_deploy == by_fleet
    # what the plan holds: the layout's paths and the protocol's defaults
    root = facts.get("dir")
    assert by_fleet["bundle"]["dest"] == f"{root}/{layout.BUNDLES}/{layout.INCOMING}/{bundle.id}"
    assert by_fleet["media"]["dest"].startswith(f"{root}/{layout.MEDIA}/")
    assert by_fleet["requests"]["commit"]["health_timeout"] == 30.0
    default = planning.make_plan(facts, fleet_plan.settings({}), bundle, art)
    assert default["release"]["http"] == DEFAULT_HTTP and default["release"]["print_every"] == PRINT_EVERY
    assert default["requests"]["commit"]["health_timeout"] == HEALTH_TIMEOUT and default["unit"] == "edgelite"


def test_one_source_rule_one_loopback_rule(tmp_path):
    from edgelite.device.sources import describe_source

    clip = tmp_path / "clip.avi"
    clip.write_bytes(b"x")
    for spec, kind in (("0", "camera"), ("/dev/video1", "camera"), ("rtsp://h/s", "stream"), ("picamera2", "picamera2"),
                       (str(clip), "file"), (str(tmp_path), "folder"), ("heldout", "missing")):
        assert describe_source(spec) == kind, spec
        assert (planning.local_file(spec) is not None) == (kind == "file"), spec
    assert planning.needs_token("0.0.0.0:8080") and planning.needs_token("cam.local:80")
    assert not planning.needs_token("127.0.0.2:9000") and not planning.needs_token("[::1]:8080")


def test_offline_plan_installs_the_resolved_list_with_uv(facts, tmp_path):
    """--offline: the venv request names the wheels to install --no-deps (numpy left to apt's) and uv's wheel,
    which the plan copies to the device's wheels/tools; without them (online) the device resolves with pip."""
    house = tmp_path / "house"
    house.mkdir()
    uv = tmp_path / "uv-0.13.9-py3-none-manylinux_2_28_aarch64.whl"
    uv.write_bytes(b"zip")
    bundle = planning.BundleInfo("0123456789abcdef", tmp_path, {"models": [{"name": "int8", "sha256": "ab" * 32}]})
    art = planning.Artifacts(wheel=Path(__file__), constraints=None, house=house, env="e1",
                             wheels=("ai_edge_litert-2.3.0-cp313-cp313-manylinux_2_27_aarch64.whl",), installer=uv)
    plan = planning.make_plan(facts, planning.Settings(), bundle, art)
    venv = plan["requests"]["venv"]
    assert venv["offline"] and venv["wheels"] == list(art.wheels)
    assert venv["installer"] == plan["installer"]["dest"] == f"{facts.get('dir')}/{layout.WHEELS}/tools/{uv.name}"
    assert plan["installer"]["src"] == str(uv) and f"{facts.get('dir')}/{layout.WHEELS}/tools" in plan["dirs"]
    online = planning.make_plan(facts, planning.Settings(), bundle,
                                planning.Artifacts(wheel=Path(__file__), constraints=None, house=None, env="e2"))
    assert online["installer"] is None and online["requests"]["venv"]["wheels"] is None


def test_mqtt_run_args_put_paho_in_the_venv_and_a_new_password_makes_a_new_release(facts, wheel, tmp_path):
    """`--run-args '--mqtt URL'`: the venv request asks for edgelite[mqtt] (a venv of its own id; --offline:
    paho-mqtt's wheel from the wheel's own metadata in the wheelhouse); the MQTT password counts in the
    release key by its salted digest, as the token does, and never enters the plan."""
    from edgelite.deploy.artifacts import Builder
    from edgelite.deploy.package import extra_requirements

    assert extra_requirements(wheel, ("mqtt",)) == ["paho-mqtt>=2.0"]
    bundle = planning.BundleInfo("0123456789abcdef", tmp_path, {"models": [{"name": "int8", "sha256": "ab" * 32}]})
    builder = Builder(offline=False, wheel=str(wheel))
    plain = planning.Settings(run_args=("--below", "0.5"))
    mqtt = planning.Settings(run_args=("--below", "0.5", "--mqtt", "mqtt://cam@broker/edgelite/k"))
    assert planning.extras_for(plain) == () and planning.extras_for(mqtt) == ("mqtt",)
    art_plain, art_mqtt = builder.for_device(facts), builder.for_device(facts, planning.extras_for(mqtt))
    assert art_mqtt.extras == ("mqtt",) and art_mqtt.env != art_plain.env
    assert planning.make_plan(facts, plain, bundle, art_plain)["requests"]["venv"]["extras"] == []
    assert planning.make_plan(facts, mqtt, bundle, art_mqtt)["requests"]["venv"]["extras"] == ["mqtt"]

    def key(password: str) -> str:
        digest = planning.token_digest("salt", password) if password else ""
        plan = planning.make_plan(facts, dataclasses.replace(mqtt, mqtt_password_sha256=digest), bundle, art_mqtt)
        assert not password or password not in json.dumps(plan)
        return plan["key"]

    assert key("pw-1") == key("pw-1") != key("pw-2") != key("")
    # a fleet host's --mqtt in its run_args gets the same extras
    assert planning.extras_for(fleet_plan.settings({"run_args": ["--mqtt=mqtt://b/x"]})) == ("mqtt",)
