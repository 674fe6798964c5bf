"""Device-only install: edgelite/device imports only numpy, OpenCV, the inference runtimes and the standard
library; running the loop loads no TensorFlow/Keras; and it runs from a fresh venv with only the core deps."""

from __future__ import annotations

import ast
import json
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

from tests.device import devicekit

DEVICE = devicekit.REPO / "edgelite" / "device"
THIRD_PARTY = {"numpy", "cv2", "ai_edge_litert", "tflite_runtime", "onnxruntime"}
# imports allowed only inside a function (optional or hardware-only), per file
LAZY_ONLY = {"onnxruntime": None, "picamera2": {"picamera.py"}, "libcamera": {"picamera.py"}, "paho": {"mqtt.py"},
             "tensorflow": {"runtime.py"}}  # runtime.py: the documented last-resort tf.lite fallback
HEAVY = {"tensorflow", "keras", "tf_keras", "tensorboard", "tensorflow_model_optimization", "tf2onnx", "onnx",
         "jax", "torch", "matplotlib", "scipy", "sklearn", "PIL", "yaml"}


def _imports(tree: ast.AST):
    """(module, lineno, inside_function) for every import and literal importlib.import_module()."""
    def walk(node, in_func):
        for child in ast.iter_child_nodes(node):
            f = in_func or isinstance(child, (ast.FunctionDef, ast.AsyncFunctionDef, ast.Lambda))
            if isinstance(child, ast.Import):
                for a in child.names:
                    yield a.name, child.lineno, in_func
            elif isinstance(child, ast.ImportFrom):
                if child.level:  # relative: stays inside edgelite.device
                    yield "edgelite.device." + (child.module or ""), child.lineno, in_func
                else:
                    yield child.module, child.lineno, in_func
            elif (isinstance(child, ast.Call) and getattr(child.func, "attr", getattr(child.func, "id", "")) ==
                  "import_module" and child.args and isinstance(child.args[0], ast.Constant)):
                yield child.args[0].value, child.lineno, in_func
            yield from walk(child, f)
    yield from walk(tree, False)


def test_device_package_imports_only_the_device_runtime():
    files = sorted(DEVICE.rglob("*.py"))  # sources/ and outputs/ too
    assert {"loop.py", "runtime.py", "videocapture.py", "preview.py"} <= {f.name for f in files}
    problems = []
    for f in files:
        for mod, line, in_func in _imports(ast.parse(f.read_text(), str(f))):
            root = mod.split(".")[0]
            where = f"{f.name}:{line} imports {mod}"
            if root in LAZY_ONLY:
                allowed = LAZY_ONLY[root]
                if allowed is not None and f.name not in allowed:
                    problems.append(f"{where} (only {sorted(allowed)} may)")
                elif not in_func:
                    problems.append(f"{where} at module level (import it inside the function that needs it)")
                continue
            if root == "edgelite":
                # edgelite.errors: the one error root, standard library only (tests/test_architecture.py);
                # edgelite.images, .http_address, .formats, .options, .suggest, .manifest: shared constants and rules,
                # stdlib only;
                # edgelite.signature: the trust-list check the agent makes too (stdlib + ssh-keygen)
                shared = ("edgelite", "edgelite.bundle", "edgelite.errors", "edgelite.images", "edgelite.http_address",
                          "edgelite.formats", "edgelite.options", "edgelite.signature", "edgelite.suggest",
                          "edgelite.manifest")
                ok = mod in shared or mod.startswith("edgelite.device")
                if not ok:
                    problems.append(f"{where} (device may use only {', '.join(shared[1:])} and edgelite.device)")
                continue
            if root in sys.stdlib_module_names or root in THIRD_PARTY:
                continue
            problems.append(f"{where} (not numpy/cv2/a runtime/the standard library)")
    assert not problems, "\n".join(problems)


def test_import_rule_catches_a_violation():
    """The scanner itself works: a stray TensorFlow import is seen, at any depth."""
    tree = ast.parse("import os\ndef f():\n    if True:\n        import tensorflow as tf\nfrom keras import layers\n")
    found = [(m, inside) for m, _, inside in _imports(tree)]
    assert found == [("os", False), ("tensorflow", True), ("keras", False)]


def _run_in_subprocess(code: str, *args) -> dict:
    p = subprocess.run([sys.executable, "-c", code, *map(str, args)], capture_output=True, text=True, timeout=120,
                       env=devicekit.cli_env(), cwd=devicekit.REPO)
    assert p.returncode == 0, p.stderr[-3000:]
    return json.loads(p.stdout.strip().splitlines()[-1])


NO_TF_AFTER_RUN = r"""
import json, sys
from tests.device import devicekit
from edgelite.cli import main
rc = main(["run", sys.argv[1], "--source", sys.argv[2], "--format", sys.argv[3], "--max-frames", "20",
           "--http", "127.0.0.1:0", "--json", "-", "--quiet"])
print(json.dumps({"rc": rc, "modules": sorted({m.split(".")[0] for m in sys.modules})}))
"""


@pytest.mark.parametrize("fmt, runtime", [("int8", "ai_edge_litert"), ("onnx", "onnxruntime")])
def test_no_tensorflow_loaded_after_running_the_loop(tiny, heldout_video, fmt, runtime):
    out = _run_in_subprocess(NO_TF_AFTER_RUN, tiny["bundle"], heldout_video, fmt)
    assert out["rc"] == 0
    loaded = set(out["modules"])
    assert not loaded & HEAVY, f"heavy modules loaded by `edgelite run`: {sorted(loaded & HEAVY)}"
    assert runtime in loaded and "cv2" in loaded


def test_importing_the_cli_and_device_package_is_light():
    out = _run_in_subprocess("import json, sys, edgelite.device, edgelite.device.cli, edgelite.cli\n"
                             "edgelite.cli.build_parser()\n"
                             "print(json.dumps({'modules': sorted({m.split('.')[0] for m in sys.modules})}))")
    loaded = set(out["modules"])
    assert not loaded & (HEAVY | {"numpy", "cv2", "ai_edge_litert", "onnxruntime"}), sorted(loaded & HEAVY)


def _pins() -> list[str]:
    text = (devicekit.REPO / "constraints.txt").read_text()
    pins = []
    for name in ("numpy", "opencv-python-headless", "ai-edge-litert"):
        m = re.search(rf"^{re.escape(name)}==(\S+)$", text, re.M | re.I)
        pins.append(f"{name}=={m.group(1)}" if m else name)
    return pins


def test_fresh_virtualenv_with_core_dependencies_only(tiny, heldout_video, tmp_path):
    """`pip install edgelite` on a Pi: numpy + opencv-python-headless + ai-edge-litert, no TensorFlow, no ONNX."""
    venv = tmp_path / "venv"
    base = getattr(sys, "_base_executable", sys.executable)
    subprocess.run([base, "-m", "venv", str(venv)], check=True, timeout=120)
    py = venv / "bin" / "python"
    env = {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "VIRTUAL_ENV", "PYTHONHOME")}
    pip = [str(py), "-m", "pip", "install", "-q", "--disable-pip-version-check"]
    p = subprocess.run([*pip, *_pins()], capture_output=True, text=True, timeout=900, env=env)
    assert p.returncode == 0, p.stderr[-3000:]
    p = subprocess.run([*pip, "--no-deps", "-e", str(devicekit.REPO)], capture_output=True, text=True, timeout=600,
                       env=env)
    assert p.returncode == 0, p.stderr[-3000:]

    probe = subprocess.run([str(py), "-c", "import importlib.util as u; print([m for m in "
                            "('tensorflow', 'tf_keras', 'keras', 'onnxruntime', 'tflite_runtime') if u.find_spec(m)])"],
                           capture_output=True, text=True, env=env, timeout=60)
    assert probe.stdout.strip() == "[]", probe.stdout + probe.stderr

    exe = venv / "bin" / "edgelite"
    p = subprocess.run([str(exe), "run", str(tiny["bundle"]), "--source", str(heldout_video), "--json", "-",
                        "--max-frames", "30"], capture_output=True, text=True, timeout=120, env=env, cwd=tmp_path)
    assert p.returncode == 0, p.stderr[-3000:]
    lines = [json.loads(s) for s in p.stdout.splitlines()]
    assert len(lines) == 30 and all(d["label"] in devicekit.LABELS for d in lines)
    p = subprocess.run([str(exe), "run", str(tiny["bundle"]), "--source", "heldout", "--print-every", "0"],
                       capture_output=True, text=True, timeout=120, env=env, cwd=tmp_path)
    assert p.returncode == 0 and "frames classified correctly" in p.stdout, p.stderr[-3000:]
    # asking for the ONNX model here is a clear error, not a traceback
    p = subprocess.run([str(exe), "run", str(tiny["bundle"]), "--format", "onnx", "--source", str(heldout_video)],
                       capture_output=True, text=True, timeout=120, env=env, cwd=tmp_path)
    assert p.returncode == 2 and "onnxruntime is not installed" in p.stderr and "Traceback" not in p.stderr
    # the workstation commands are there too (one wheel), and say which extra they need
    for argv, extra in [(["train", "photos", "--out", "runs/a"], "train"), (["convert", "runs/a", "--out", "b"], "convert")]:
        p = subprocess.run([str(exe), *argv], capture_output=True, text=True, timeout=120, env=env, cwd=tmp_path)
        assert p.returncode == 2, p.stderr[-3000:]
        assert p.stderr.strip() == f"edgelite {argv[0]}: error: tensorflow is not installed: pip install 'edgelite[{extra}]'"
    assert Path(venv / "lib").exists()
