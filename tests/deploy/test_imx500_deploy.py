"""Deploying an AI Camera bundle: the agent turns the bundle's packerOut.zip into imx500/network.rpk with
Raspberry Pi's `imx500-package` when it accepts the bundle, and preflight refuses `--source imx500` on a
device without the tool.

`imx500-package` is Raspberry Pi's (apt, arm64): here a stand-in script on the agent's PATH with its command
line (`-i packerOut.zip -o DIR` -> DIR/network.rpk) takes its place; the real one runs only on a Pi.
"""

from __future__ import annotations

import json
import os
import shutil
import zipfile
from pathlib import Path

import pytest

from edgelite import jsonfile
from edgelite.manifest import IMX500_NETWORK, MANIFEST, sha256_file

from .test_agent import call, mini_bundle, pyz  # noqa: F401  (pyz is a fixture)
from .test_preflight import parse_probe, with_line

STANDIN_PACKAGER = """#!/bin/sh
# stand-in for Raspberry Pi's imx500-package: -i packerOut.zip -o DIR -> DIR/network.rpk
while [ $# -gt 0 ]; do case "$1" in -i) in=$2; shift 2;; -o) out=$2; shift 2;; *) shift;; esac; done
python3 -c "import sys, zipfile; zipfile.ZipFile(sys.argv[1]).testzip()" "$in" || { echo "bad packerOut" >&2; exit 3; }
mkdir -p "$out" && { printf 'rpk:'; cat "$in"; } > "$out/network.rpk"
"""


def imx500_bundle(root: Path) -> Path:
    mini_bundle(root)
    packed = root / "packerOut.zip"
    with zipfile.ZipFile(packed, "w") as z:
        z.writestr("packerOut/network.fpk", b"\1" * 64)
    manifest = json.loads((root / MANIFEST).read_text())
    manifest["models"].append({"name": "imx500", "path": packed.name, "format": "imx500", "precision": "int8",
                               "sha256": sha256_file(packed), "bytes": packed.stat().st_size})
    jsonfile.write_json(root / MANIFEST, manifest)
    return root


def packager_on_path(tmp_path: Path, script: str = STANDIN_PACKAGER) -> str:
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    tool = bin_dir / "imx500-package"
    tool.write_text(script)
    tool.chmod(0o755)
    return f"{bin_dir}{os.pathsep}{os.environ['PATH']}"


def push(pyz, tmp_path, bundle_src: Path, path_env: str, monkeypatch) -> tuple[int, dict, Path | None]:  # noqa: F811
    """prepare-bundle, copy into the incoming folder, accept-bundle (what `edgelite deploy` does over SSH):
    (exit code, reply, the accepted bundle's folder or None)."""
    monkeypatch.setenv("PATH", path_env)
    device = tmp_path / "device"
    bid = "0123456789abcdef"
    code, reply = call(pyz, {"command": "prepare-bundle", "bundle": bid, "dir": str(device)}, tmp_path)
    assert code == 0, reply
    [inc] = list(device.rglob(bid))
    shutil.rmtree(inc)
    shutil.copytree(bundle_src, inc)
    code, reply = call(pyz, {"command": "accept-bundle", "bundle": bid, "dir": str(device)}, tmp_path)
    final = [p for p in device.rglob(bid) if p != inc]
    return code, reply, final[0] if final else None


def test_accepting_an_imx500_bundle_makes_network_rpk(pyz, tmp_path, monkeypatch):  # noqa: F811
    src = imx500_bundle(tmp_path / "b")
    code, reply, final = push(pyz, tmp_path, src, packager_on_path(tmp_path), monkeypatch)
    assert code == 0, reply
    network = final / IMX500_NETWORK
    assert network.is_file() and network.read_bytes() == b"rpk:" + (src / "packerOut.zip").read_bytes()


def test_a_packager_failure_is_one_clear_line(pyz, tmp_path, monkeypatch):  # noqa: F811
    src = imx500_bundle(tmp_path / "b")
    failing = "#!/bin/sh\necho 'ERROR: packerOut.zip: unsupported firmware version' >&2\nexit 4\n"
    code, reply, final = push(pyz, tmp_path, src, packager_on_path(tmp_path, failing), monkeypatch)
    assert code != 0 and not reply["ok"] and final is None  # not accepted: the deploy stops here
    assert "imx500-package could not make imx500/network.rpk" in reply["error"]
    assert "unsupported firmware version" in reply["error"] and "\n" not in reply["error"]


def test_a_bundle_without_imx500_is_accepted_as_before(pyz, tmp_path, monkeypatch):  # noqa: F811
    code, reply, final = push(pyz, tmp_path, mini_bundle(tmp_path / "b"), packager_on_path(tmp_path), monkeypatch)
    assert code == 0, reply
    assert not (final / IMX500_NETWORK).exists()


@pytest.fixture(scope="module")
def real_probe() -> str:
    from .test_preflight import probe_here

    return probe_here()


def test_preflight_refuses_source_imx500_without_imx500_package(real_probe):
    facts = parse_probe(with_line(real_probe, "imx500_package", "no"))
    problems = assess_imx500(facts)
    assert any("imx500-package" in p and "sudo apt install imx500-all" in p for p in problems), problems
    assert not any("imx500" in p for p in assess_imx500(parse_probe(with_line(real_probe, "imx500_package", "yes"))))


def assess_imx500(facts):
    from edgelite.deploy.preflight import assess

    return assess(facts, source="imx500").problems
