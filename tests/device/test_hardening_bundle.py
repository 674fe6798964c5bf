"""Issue #11 finding 6: a bundle's manifest is input. Its paths stay inside the bundle, sha256 and bytes are
required, every malformed manifest is one line and exit 2, and the runtime loads the bytes it hashed."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest

from edgelite.bundle import Bundle, BundleError
from edgelite.manifest import MANIFEST
from tests.device import devicekit


def _copy(tiny, tmp_path: Path, edit=None, name: str = "b") -> Path:
    b = tmp_path / name
    shutil.copytree(tiny["bundle"], b)
    if edit is not None:
        m = json.loads((b / MANIFEST).read_text())
        edit(m)
        (b / MANIFEST).write_text(json.dumps(m))
    return b


def _only(m: dict, name: str) -> dict:
    m["models"] = [e for e in m["models"] if e["name"] == name]
    return m["models"][0]


def _run(bundle: Path, folder: Path):
    return devicekit.run_cmd(bundle, "--source", folder, "--max-frames", "1", "--quiet", timeout=40)


def _refused(p, *words: str) -> None:
    assert p.returncode == 2, (p.returncode, p.stderr[-800:])
    lines = p.stderr.strip().splitlines()
    assert "Traceback" not in p.stderr and len(lines) == 1 and lines[0].startswith("edgelite run: error:"), p.stderr
    for w in words:
        assert w in lines[0], lines[0]


def test_a_path_out_of_the_bundle_is_refused_even_with_a_matching_sha256(tiny, tmp_path, heldout_folder):
    outside = tmp_path / "outside"
    outside.mkdir()
    shutil.copy(tiny["bundle"] / "model_fp32.tflite", outside / "model.tflite")
    b = _copy(tiny, tmp_path, lambda m: _only(m, "fp32").update(path="../outside/model.tflite"))
    (b / "model_fp32.tflite").unlink()
    _refused(_run(b, heldout_folder), "not a relative path inside the bundle")
    b2 = _copy(tiny, tmp_path, lambda m: _only(m, "fp32").update(path=str(outside / "model.tflite")), "abs")
    _refused(_run(b2, heldout_folder), "not a relative path inside the bundle")


def test_a_symlink_out_of_the_bundle_is_refused(tiny, tmp_path, heldout_folder):
    b = _copy(tiny, tmp_path, lambda m: _only(m, "fp32"))
    outside = tmp_path / "real.tflite"
    shutil.move(b / "model_fp32.tflite", outside)
    (b / "model_fp32.tflite").symlink_to(outside)
    _refused(_run(b, heldout_folder), "inside the bundle")


def test_dev_zero_without_bytes_neither_hangs_nor_loads(tiny, tmp_path, heldout_folder):
    b = _copy(tiny, tmp_path, lambda m: _only(m, "fp32").update(path="/dev/zero", bytes=None))
    _refused(_run(b, heldout_folder))
    b2 = _copy(tiny, tmp_path, lambda m: _only(m, "fp32").update(bytes=None), "nobytes")
    _refused(_run(b2, heldout_folder), "bytes")
    b3 = _copy(tiny, tmp_path, lambda m: _only(m, "fp32").pop("sha256"), "nosha")
    _refused(_run(b3, heldout_folder), "sha256")


@pytest.mark.parametrize("edit", [
    lambda m: m.update(models=[1]),
    lambda m: m.update(input=[]),
    lambda m: m.update(labels="red"),
    lambda m: m["input"].update(height="32"),
    lambda m: m.update(info=[]),
], ids=["models-int", "input-list", "labels-str", "height-str", "info-list"])
def test_a_mistyped_manifest_is_one_line_exit_2(tiny, tmp_path, heldout_folder, edit):
    _refused(_run(_copy(tiny, tmp_path, edit), heldout_folder), "re-run `edgelite convert`")


def test_non_utf8_labels_file_is_one_line_exit_2(tiny, tmp_path, heldout_folder):
    b = _copy(tiny, tmp_path)
    (b / "labels.txt").write_bytes(b"red\n\xff\xfegreen\nblue\nyellow\n")
    _refused(_run(b, heldout_folder), "UTF-8")


def test_the_runtime_loads_the_bytes_it_hashed(tiny, tmp_path):
    """A file swapped between the check and the load is not what runs: the checked bytes are."""
    from edgelite.device.runtime import load_from_bundle

    b = _copy(tiny, tmp_path, lambda m: _only(m, "fp32"))
    path = b / "model_fp32.tflite"

    class SwapAfterCheck(Bundle):
        def verified_path(self, entry):  # the parent commit's check-then-reopen
            p = super().verified_path(entry)
            path.write_bytes(b"\0" * 64)
            return p

        def verified_bytes(self, entry):
            got = super().verified_bytes(entry)
            path.write_bytes(b"\0" * 64)  # an attacker (or a half-finished copy) replaces the file now
            return got

    bundle = SwapAfterCheck.load(b)
    model, entry = load_from_bundle(bundle, "fp32")
    assert entry.name == "fp32" and model.num_classes == len(bundle.labels)


def test_the_agent_verify_refuses_paths_out_of_the_bundle(tiny, tmp_path):
    from edgelite.deploy.agent.bundles import verify_bundle

    outside = tmp_path / "outside"
    outside.mkdir()
    shutil.copy(tiny["bundle"] / "model_fp32.tflite", outside / "model.tflite")
    b = _copy(tiny, tmp_path, lambda m: _only(m, "fp32").update(path="../outside/model.tflite"))
    problems = verify_bundle(b)
    assert problems and "not a relative path inside the bundle" in problems[0]
    with pytest.raises(BundleError, match="inside the bundle"):
        Bundle.load(b).verify()
