"""`--formats imx500`: the Raspberry Pi AI Camera (Sony IMX500, the accelerator inside the image sensor).

Sony's toolchain (Edge MDT: MCT and `imx500-converter`) pins Python < 3.12, TensorFlow < 2.16 and numpy < 2,
so it lives in its own venv (`make imx500-venv`, ~/.cache/edgelite/imx500-venv) and runs as a subprocess;
nothing else in convert depends on it. The steps, each measured on the demo's EfficientNet-Lite0:

1. the run's Keras model, made loadable by Keras 2.15: ``Rescaling`` (which the converter refuses as an
   unsupported op) and ``Normalization`` become an exact 1x1 ``DepthwiseConv2D`` (checked on the calibration
   images), then two config edits (module ``tf_keras.src.*`` -> ``keras.src.*``; no InputLayer ``optional``);
2. `imx500_worker.py` in the venv: MCT post-training quantization with the IMX500 target platform
   capabilities, calibrated like int8; the quantized Keras model's scores on the held-out images are the
   format's validation (the sensor itself is not here);
3. ``imxconv-tf`` -> ``packerOut.zip`` (what `imx500-package` on the Pi turns into ``network.rpk``) and its
   memory report: does the network fit the sensor's memory.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import tempfile
import time
import zipfile
from pathlib import Path
from typing import Any

import numpy as np

from edgelite.convert.errors import ConvertError

#: the venv `make imx500-venv` builds (EDGELITE_IMX500_VENV overrides)
DEFAULT_VENV = Path.home() / ".cache" / "edgelite" / "imx500-venv"
CONVERTER = "imxconv-tf"
PACKED = "packerOut.zip"
WORKER = Path(__file__).with_name("imx500_worker.py")
#: layers rewritten as an exact 1x1 DepthwiseConv2D (the converter maps no elementwise preprocessing)
REWRITTEN = ("Rescaling", "Normalization")
#: a rewrite must reproduce the float model to this (probabilities)
EXACT = 1e-4


def venv_dir() -> Path:
    return Path(os.environ.get("EDGELITE_IMX500_VENV") or DEFAULT_VENV)


def find_venv() -> Path | None:
    """The IMX500 venv when it is usable (its python and imxconv-tf are there), else None."""
    v = venv_dir()
    return v if (v / "bin" / "python").is_file() and (v / "bin" / CONVERTER).is_file() else None


def require_venv() -> Path:
    v = find_venv()
    if v is None:
        raise ConvertError(f"imx500 needs Sony's toolchain in its own venv ({venv_dir()} has none): run "
                           "`make imx500-venv` (~2.3 GB; Python 3.9-3.11, Java 17)")
    if shutil.which("java") is None:
        raise ConvertError("imxconv-tf needs Java 17: install openjdk-17-jre-headless (`make imx500-venv` does, "
                           "as root)")
    return v


# ------------------------------------------------------------------------------------------ 1. the model
def sensor_ready(model, check: np.ndarray) -> tuple[Any, list[str]]:
    """(model, rewritten layer names): Rescaling / Normalization as exact 1x1 DepthwiseConv2D layers.

    `check`: a few uint8 images the rewrite must reproduce the original on (ConvertError otherwise)."""
    import tf_keras as keras

    config = model.get_config()
    kernels: dict[str, list[np.ndarray]] = {}
    for layer_cfg in config.get("layers", []):
        if layer_cfg.get("class_name") not in REWRITTEN:
            continue
        layer = model.get_layer(layer_cfg["config"]["name"])
        scale, offset = _affine(layer)
        name = layer.name
        layer_cfg["class_name"] = "DepthwiseConv2D"
        layer_cfg["config"] = {"name": name, "trainable": False, "dtype": "float32", "kernel_size": (1, 1),
                               "strides": (1, 1), "padding": "valid", "depth_multiplier": 1, "use_bias": True}
        for key in ("module", "registered_name"):
            layer_cfg.pop(key, None)
        kernels[name] = [scale.reshape(1, 1, -1, 1).astype(np.float32), offset.astype(np.float32)]
    if not kernels:
        return model, []
    new = keras.Model.from_config(config)
    for layer in new.layers:
        if layer.name in kernels:
            layer.set_weights(kernels[layer.name])
        elif layer.weights:
            layer.set_weights(model.get_layer(layer.name).get_weights())
    x = check.astype(np.float32)
    diff = float(np.abs(new.predict(x, verbose=0) - model.predict(x, verbose=0)).max()) if len(x) else 0.0
    if diff > EXACT:
        raise ConvertError(f"imx500: rewriting {', '.join(kernels)} as DepthwiseConv2D changed the output by {diff:.2g}; "
                           "the model's preprocessing is not a per-channel affine map the sensor can run")
    return new, sorted(kernels)


def _affine(layer) -> tuple[np.ndarray, np.ndarray]:
    """(per-channel scale, offset) of a Rescaling / Normalization layer: y = x * scale + offset."""
    channels = int(layer.input_shape[-1])
    if type(layer).__name__ == "Rescaling":
        scale = np.broadcast_to(np.asarray(layer.scale, np.float64).reshape(-1), (channels,))
        offset = np.broadcast_to(np.asarray(layer.offset, np.float64).reshape(-1), (channels,))
        return scale.copy(), offset.copy()
    if getattr(layer, "invert", False):
        raise ConvertError(f"imx500: layer {layer.name} is an inverted Normalization; the sensor cannot run it")
    import tf_keras as keras

    mean = np.broadcast_to(np.asarray(layer.mean).reshape(-1), (channels,)).astype(np.float64)
    std = np.maximum(np.sqrt(np.broadcast_to(np.asarray(layer.variance).reshape(-1), (channels,))), keras.backend.epsilon())
    return 1.0 / std, -mean / std


def save_for_keras215(model, path: Path) -> None:
    """Save a tf-keras model as a .keras file that Keras 2.15 (the IMX500 venv's) loads: module
    ``tf_keras.src.*`` -> ``keras.src.*`` and no InputLayer ``optional`` key (Keras 2.15 has neither)."""
    tmp = path.with_suffix(".tf_keras.keras")
    model.save(tmp)
    with zipfile.ZipFile(tmp) as src, zipfile.ZipFile(path, "w", zipfile.ZIP_DEFLATED) as dst:
        for item in src.infolist():
            data = src.read(item.filename)
            if item.filename == "config.json":
                data = json.dumps(_keras215_config(json.loads(data))).encode()
            dst.writestr(item, data)
    tmp.unlink()


def _keras215_config(node: Any) -> Any:
    if isinstance(node, dict):
        out = {}
        for k, v in node.items():
            if k == "module" and isinstance(v, str) and v.startswith("tf_keras"):
                v = "keras" + v[len("tf_keras"):]
            out[k] = _keras215_config(v)
        if out.get("class_name") == "InputLayer" and isinstance(out.get("config"), dict):
            out["config"].pop("optional", None)
        return out
    if isinstance(node, list):
        return [_keras215_config(v) for v in node]
    return node


# ------------------------------------------------------------------------------------------ 2. MCT
def quantize(venv: Path, model_file: Path, calib: np.ndarray, test: np.ndarray, work: Path, *,
             timeout: float = 1800) -> dict[str, Any]:
    """MCT PTQ (IMX500 TPC) in the venv: writes work/q.keras; returns the worker's reply with the
    quantized model's `scores` (and the venv float model's, `float_scores`) on `test`."""
    req = {"model": str(model_file), "calibration": str(work / "calib.npy"), "test": str(work / "test.npy"),
           "scores": str(work / "scores.npy"), "float_scores": str(work / "float_scores.npy"),
           "quantized": str(work / "q.keras")}
    np.save(req["calibration"], calib)
    np.save(req["test"], test)
    (work / "request.json").write_text(json.dumps(req))
    proc = _run([str(venv / "bin" / "python"), str(WORKER), str(work / "request.json")], _venv_env(venv), timeout,
                "MCT quantization")
    reply = _last_json(proc.stdout)
    if proc.returncode != 0 or reply is None or "error" in reply:
        why = (reply or {}).get("error") or _tail(proc.stderr)
        raise ConvertError(f"imx500: MCT quantization failed (exit {proc.returncode}): {why}")
    reply["scores"] = np.load(req["scores"])
    reply["float_scores"] = np.load(req["float_scores"])
    reply["log"] = proc.stderr[-4000:]
    return reply


# ------------------------------------------------------------------------------------------ 3. converter
def compile_packed(venv: Path, quantized: Path, out_dir: Path, *, timeout: float = 1800) -> dict[str, Any]:
    """``imxconv-tf -i q.keras -o out_dir`` -> out_dir/packerOut.zip; returns what its report says."""
    exe = venv / "bin" / CONVERTER
    proc = _run([str(exe), "-i", str(quantized), "-o", str(out_dir)], _venv_env(venv), timeout, CONVERTER)
    text = (proc.stdout or "") + (proc.stderr or "")
    packed = out_dir / PACKED
    unsupported = unsupported_layers(text)
    if proc.returncode != 0 or not packed.is_file():
        if unsupported:
            raise ConvertError(f"imx500: the IMX500 cannot run {', '.join(unsupported[:8])} ({CONVERTER}: "
                               f"{_tail(text)[:160]}); replace them or choose a backbone without them")
        raise ConvertError(f"imx500: {CONVERTER} failed (exit {proc.returncode}): {_tail(text)}")
    info: dict[str, Any] = {"converter_version": _version(text), "memory": memory_report(out_dir)}
    info["log"] = text[-4000:]
    return info


def memory_report(out_dir: Path) -> dict[str, Any] | None:
    """The converter's memory report (``*MemoryReport.json``): network size against the sensor's memory."""
    found = sorted(out_dir.rglob("*emory*eport*.json"))
    if not found:
        return None
    try:
        raw = json.loads(found[0].read_text())
    except (OSError, ValueError):
        return None
    rep = raw.get("Memory Report", raw) if isinstance(raw, dict) else {}
    if not isinstance(rep, dict):
        return None
    fits = rep.get("Fit In Chip")
    return {"file": found[0].name, "fits": fits if isinstance(fits, bool) else None,
            "used": rep.get("Memory Usage"), "available": rep.get("Total Memory Available On Chip"),
            "utilization": rep.get("Memory Utilization")}


def unsupported_layers(text: str) -> list[str]:
    """What the converter refuses: the layer types of its ``[USOP] The network contains unsupported ops: a.b.C``
    and the settings of its ``Param error - param: activation, value: elu`` lines.

    >>> unsupported_layers("ERROR : CODE: [USOP] The network contains unsupported ops: "
    ...                    "keras.src.layers.preprocessing.image_preprocessing.Rescaling [/x/logger.py:185]")
    ['Rescaling']
    >>> unsupported_layers("Param error - param: activation, value: elu, reason: Supported values: ['relu']")
    ['activation=elu']
    """
    names: list[str] = []
    found = [op.strip().rsplit(".", 1)[-1] for m in re.finditer(r"unsupported ops?:\s*([^\[\n]+)", text, re.I)
             for op in m.group(1).split(",")]
    found += [f"{m.group(1)}={m.group(2)}" for m in re.finditer(r"Param error - param: (\w+), value: ([^,\s]+)", text)]
    for name in found:
        if name and name not in names:
            names.append(name)
    return names


def _version(text: str) -> str | None:
    m = re.search(r"Running version (\d+\.\d+\.\d+)", text)
    return m.group(1) if m else None


def _venv_env(venv: Path) -> dict[str, str]:
    """The environment for the venv's processes: its bin first, and none of ours that would make its
    TensorFlow 2.15 look for tf-keras (TF_USE_LEGACY_KERAS) or import our packages (PYTHONPATH)."""
    env = {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "PYTHONHOME", "TF_USE_LEGACY_KERAS")}
    env.update(PATH=f"{venv / 'bin'}{os.pathsep}{os.environ.get('PATH', '')}", TF_CPP_MIN_LOG_LEVEL="3")
    return env


def _run(argv: list[str], env: dict, timeout: float, what: str) -> subprocess.CompletedProcess:
    try:
        return subprocess.run(argv, capture_output=True, text=True, timeout=timeout, env=env, stdin=subprocess.DEVNULL)
    except subprocess.TimeoutExpired:
        raise ConvertError(f"imx500: {what} did not finish within {timeout:.0f} s") from None
    except OSError as e:
        raise ConvertError(f"imx500: cannot start {what} ({e}); rebuild the venv with `make imx500-venv`") from None


def _last_json(text: str) -> dict | None:
    for line in reversed((text or "").strip().splitlines()):
        try:
            v = json.loads(line)
        except ValueError:
            continue
        if isinstance(v, dict):
            return v
    return None


def _tail(text: str) -> str:
    """The last line of a tool's output, without the converter logger's ``[/path/logger.py:185]`` suffix."""
    lines = [ln.strip() for ln in (text or "").strip().splitlines() if ln.strip()]
    return re.sub(r"\s*\[/[^\]]*\]$", "", lines[-1])[:240] if lines else "no output"


# ------------------------------------------------------------------------------------------ the export
def export(model, calib: np.ndarray, test: np.ndarray, dst: Path, log) -> dict[str, Any]:
    """The run's float `model` -> `dst` (packerOut.zip). Returns {"scores": quantized model's held-out
    scores, "extra": what the manifest records}. Raises ConvertError without the venv."""
    venv = require_venv()
    t = time.perf_counter()
    with tempfile.TemporaryDirectory(prefix="edgelite-imx500-") as tmp:
        work = Path(tmp)
        ready, rewritten = sensor_ready(model, calib[:8])
        if rewritten:
            log(f"imx500: {', '.join(rewritten)} rewritten as exact 1x1 DepthwiseConv2D (the converter refuses "
                "Rescaling)")
        save_for_keras215(ready, work / "float.keras")
        log(f"imx500: MCT post-training quantization (IMX500 TPC) on {len(calib)} calibration images")
        q = quantize(venv, work / "float.keras", calib, test, work)
        log(f"imx500: {CONVERTER} (a minute or two, ~3.6 GB)")
        t_conv = time.perf_counter()
        info = compile_packed(venv, work / "q.keras", work / "out")
        converter_s = time.perf_counter() - t_conv
        shutil.copyfile(work / "out" / PACKED, dst)
    log.detail(q.pop("log", ""))
    log.detail(info.pop("log", ""))
    versions = {k: q.get(k) for k in ("mct", "keras", "numpy", "python")}
    extra = {"rewritten": rewritten, "toolchain": versions, "converter": info,
             "seconds": {"ptq": q["ptq_seconds"], "converter": round(converter_s, 2),
                         "total": round(time.perf_counter() - t, 2)},
             "validated_with": "MCT quantized Keras model (the sensor is not here)"}
    return {"scores": q["scores"], "float_scores": q["float_scores"], "extra": extra}
