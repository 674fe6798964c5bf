"""Edge TPU: a static compatibility report for any int8 .tflite, and `edgetpu_compiler` when present.

The report checks the model against Coral's documented rules (coral.ai/docs/edgetpu/models-intro):
every tensor int8/uint8 (int32 only for constants such as biases), static shapes, at most the three
innermost dimensions larger than 1 (batch 1), and each op in the supported-operations table with
its known limitations. The compiler maps one contiguous run of ops: after the first op it cannot
map, that op and everything after it run on the CPU — so the report names where the graph splits.
"""

from __future__ import annotations

import re
import shutil
import subprocess
import tempfile
from collections import Counter
from pathlib import Path
from typing import Any

from edgelite.convert.errors import ConvertError
from edgelite.formats import edgetpu_filename

COMPILER = "edgetpu_compiler"

#: Coral's supported operations (TFLite builtin names) -> documented limitation we check, if any
SUPPORTED_OPS: dict[str, str] = {
    "ADD": "", "AVERAGE_POOL_2D": "no fused activation", "CONCATENATION": "no fused activation",
    "CONV_2D": "", "DEPTHWISE_CONV_2D": "", "EXPAND_DIMS": "",
    "FULLY_CONNECTED": "output is one-dimensional", "L2_NORMALIZATION": "", "LOGISTIC": "",
    "UNIDIRECTIONAL_SEQUENCE_LSTM": "", "MAXIMUM": "", "MAX_POOL_2D": "no fused activation",
    "MEAN": "reduces along x and/or y only", "MINIMUM": "", "MUL": "", "PACK": "",
    "PAD": "pads along x and/or y only", "PRELU": "", "QUANTIZE": "", "REDUCE_MAX": "", "REDUCE_MIN": "",
    "RELU": "", "RELU6": "", "RELU_N1_TO_1": "", "RESHAPE": "", "RESIZE_BILINEAR": "",
    "RESIZE_NEAREST_NEIGHBOR": "", "RSQRT": "", "SLICE": "",
    "SOFTMAX": "one-dimensional input of at most 16,000 elements", "SPACE_TO_DEPTH": "", "SPLIT": "",
    "SQUEEZE": "", "STRIDED_SLICE": "", "SUB": "", "SUM": "", "SQUARED_DIFFERENCE": "", "TANH": "",
    "TRANSPOSE": "", "TRANSPOSE_CONV": "",
}
_NO_FUSED = {"AVERAGE_POOL_2D", "MAX_POOL_2D", "CONCATENATION"}
_INT8_TYPES = {"INT8", "UINT8"}


# ------------------------------------------------------------------------------------------ static report
def compatibility(model_bytes: bytes, name: str = "int8") -> dict[str, Any]:
    """Predict how `edgetpu_compiler` would map the model: per-op status, the split point, a summary."""
    from tensorflow.lite.tools import flatbuffer_utils as fu

    obj = fu.convert_bytearray_to_object(bytearray(model_bytes))
    if len(obj.subgraphs) != 1:
        return {"model": name, "compatible": False, "ops_total": 0, "tpu_ops": 0, "cpu_ops": 0,
                "split": None, "ops": [], "by_op": {},
                "checks": {"one_subgraph": False},
                "issues": [f"{len(obj.subgraphs)} subgraphs: the Edge TPU compiler maps only the main subgraph"]}
    sg = obj.subgraphs[0]

    def tensor_type(i):
        return fu.type_to_name(sg.tensors[i].type).replace("TensorType.", "").upper() if i >= 0 else None

    def is_const(i):
        data = obj.buffers[sg.tensors[i].buffer].data
        return data is not None and len(data) > 0

    def shape(i, signature=False):
        t = sg.tensors[i]
        s = t.shapeSignature if signature and t.shapeSignature is not None else t.shape
        return [int(d) for d in s] if s is not None else []

    def const_values(i):
        import numpy as np

        t = sg.tensors[i]
        raw = np.asarray(obj.buffers[t.buffer].data, np.uint8)
        return raw.view(np.int32) if fu.type_to_name(t.type).upper().endswith("INT32") else raw

    checks = {"int8": True, "static_shapes": True, "batch_1": True, "supported_ops": True}
    ops = []
    for idx, op in enumerate(sg.operators):
        opname = fu.opcode_to_name(obj, op.opcodeIndex)
        reasons = []
        if opname not in SUPPORTED_OPS:
            reasons.append("operation not supported by the Edge TPU")
            checks["supported_ops"] = False
        tensors = [i for i in list(op.inputs) + list(op.outputs) if i >= 0]
        for i in tensors:
            tt = tensor_type(i)
            if tt not in _INT8_TYPES and not (is_const(i) and tt == "INT32"):
                reasons.append(f"{'constant' if is_const(i) else 'tensor'} {sg.tensors[i].name.decode()!r} is "
                               f"{tt.lower()}, not int8/uint8 (needs full-integer quantization)")
                checks["int8"] = False
                break
        for i in tensors:
            if any(d < 0 for d in shape(i, signature=True)):
                reasons.append(f"tensor {sg.tensors[i].name.decode()!r} has a dynamic shape {shape(i, True)}")
                checks["static_shapes"] = False
                break
        for i in tensors:
            s = shape(i)
            if not is_const(i) and len(s) > 3 and any(d > 1 for d in s[:-3]):
                reasons.append(f"tensor shape {s}: only the 3 innermost dimensions may exceed 1 (batch must be 1)")
                checks["batch_1"] = False
                break
        reasons += _op_limits(opname, op, sg, shape, is_const, const_values)
        ops.append({"index": idx, "op": opname, "ok": not reasons, "reasons": reasons})

    # leading float->int8 QUANTIZE (float32 I/O) runs on the CPU before the Edge TPU segment
    start = 0
    while start < len(ops) and ops[start]["op"] == "QUANTIZE" and not ops[start]["ok"]:
        start += 1
    split = next((o for o in ops[start:] if not o["ok"]), None)
    end = split["index"] if split else len(ops)
    for o in ops:
        o["runs_on"] = "edgetpu" if start <= o["index"] < end else "cpu"
    by_op: dict[str, dict[str, int]] = {}
    for o in ops:
        by_op.setdefault(o["op"], {"edgetpu": 0, "cpu": 0})[o["runs_on"]] += 1
    tpu = sum(o["runs_on"] == "edgetpu" for o in ops)
    issues = []
    if split:
        issues.append(f"graph splits at op {split['index']} ({split['op']}): {split['reasons'][0]}; it and the "
                      f"{len(ops) - split['index'] - 1} ops after it run on the CPU")
    if start:
        issues.append(f"the first {start} QUANTIZE op(s) take float input and run on the CPU (use --io-type uint8)")
    return {"model": name, "compatible": tpu == len(ops), "ops_total": len(ops), "tpu_ops": tpu,
            "cpu_ops": len(ops) - tpu,
            "split": ({"index": split["index"], "op": split["op"], "reason": split["reasons"][0]} if split else None),
            "by_op": by_op, "checks": checks, "issues": issues,
            "ops": [{k: o[k] for k in ("index", "op", "runs_on", "reasons")} for o in ops]}


def _op_limits(opname, op, sg, shape, is_const, const_values) -> list[str]:
    opts = op.builtinOptions
    out = []
    if opname in _NO_FUSED and getattr(opts, "fusedActivationFunction", 0):
        out.append(f"{opname} with a fused activation")
    if opname == "MEAN" and len(op.inputs) > 1 and is_const(op.inputs[1]):
        rank = len(shape(op.inputs[0]))
        axes = {int(a) % rank for a in const_values(op.inputs[1])} if rank else set()
        if rank == 4 and not axes <= {1, 2}:
            out.append(f"MEAN over axes {sorted(axes)}: only x/y reductions are supported")
    if opname == "PAD" and len(op.inputs) > 1 and is_const(op.inputs[1]):
        pads = const_values(op.inputs[1]).reshape(-1, 2)
        if len(pads) == 4 and (pads[0].any() or pads[3].any()):
            out.append("PAD along batch or channels: only x/y padding is supported")
    if opname == "SOFTMAX":
        s = shape(op.inputs[0])
        n = 1
        for d in s:
            n *= d
        if any(d > 1 for d in s[:-1]) or n > 16000:
            out.append(f"SOFTMAX input {s}: must be one-dimensional with at most 16,000 elements")
    if opname == "FULLY_CONNECTED" and op.outputs:
        s = shape(op.outputs[0])
        if any(d > 1 for d in s[:-1]):
            out.append(f"FULLY_CONNECTED output {s} is not one-dimensional")
    return out


def report_markdown(rep: dict[str, Any]) -> str:
    """The report as a small markdown page (what the compiler's operation log would say, predicted)."""
    lines = [f"# Edge TPU compatibility: {rep['model']}", "",
             f"Static check against Coral's documented rules (no compiler involved). "
             f"Predicted: **{rep['tpu_ops']} of {rep['ops_total']} ops on the Edge TPU**, {rep['cpu_ops']} on the CPU.",
             "", "| check | result |", "|---|---|"]
    names = {"int8": "all tensors int8/uint8", "static_shapes": "static shapes", "batch_1": "batch 1",
             "supported_ops": "only supported op types", "one_subgraph": "one subgraph"}
    for k, v in rep["checks"].items():
        lines.append(f"| {names.get(k, k)} | {'yes' if v else '**no**'} |")
    lines += ["", "| operator | count | runs on |", "|---|---|---|"]
    for opname, c in sorted(rep["by_op"].items()):
        for where in ("edgetpu", "cpu"):
            if c[where]:
                lines.append(f"| {opname} | {c[where]} | {'Edge TPU' if where == 'edgetpu' else 'CPU'} |")
    lines.append("")
    if rep["split"]:
        s = rep["split"]
        lines.append(f"**Graph split** at op {s['index']} ({s['op']}): {s['reason']}. The compiler maps one contiguous "
                     "segment; this op and every op after it fall back to the CPU.")
    else:
        lines.append("No split: the whole graph would map to the Edge TPU.")
    for issue in rep["issues"]:
        lines.append(f"- {issue}")
    return "\n".join(lines) + "\n"


# ------------------------------------------------------------------------------------------ compiler
def find_compiler() -> str | None:
    return shutil.which(COMPILER)


def compile_model(src: Path, dst: Path, *, timeout: float = 600) -> dict[str, Any]:
    """Run `edgetpu_compiler` on `src`, write the compiled model to `dst`; return what its log says."""
    exe = find_compiler()
    if exe is None:
        raise ConvertError(f"{COMPILER} is not on PATH; install edgetpu-compiler from Coral's apt repository "
                           "(x86-64 Debian/Ubuntu only)")
    with tempfile.TemporaryDirectory(prefix="edgelite-edgetpu-") as tmp:
        try:
            proc = subprocess.run([exe, "--show_operations", "--out_dir", tmp, str(src)], capture_output=True,
                                  text=True, timeout=timeout)
        except subprocess.TimeoutExpired:
            raise ConvertError(f"{COMPILER} did not finish within {timeout:.0f} s") from None
        out = (proc.stdout or "") + (proc.stderr or "")
        compiled = Path(tmp) / edgetpu_filename(src)
        if proc.returncode != 0 or not compiled.is_file():
            tail = next((ln for ln in reversed(out.strip().splitlines()) if ln.strip()), "no output")
            raise ConvertError(f"{COMPILER} failed (exit {proc.returncode}): {tail[:240]}")
        log = Path(tmp) / f"{src.stem}_edgetpu.log"
        log_text = log.read_text(errors="replace") if log.is_file() else ""
        shutil.copyfile(compiled, dst)
    info = parse_compiler_output(out)
    if log_text:  # the .log file holds the same operator table; count it once
        info["operators"] = parse_compiler_output(log_text)["operators"]
    info["log"] = out.strip()[-4000:]
    return info


def parse_compiler_output(text: str) -> dict[str, Any]:
    """Version, op counts and the per-operator table from `edgetpu_compiler` output / its .log file."""

    def num(pattern):
        m = re.search(pattern, text)
        return int(m.group(1)) if m else None

    version = re.search(r"Edge TPU Compiler version\s+(\S+)", text)
    total = num(r"Total number of operations:\s*(\d+)")
    tpu = num(r"Number of operations that will run on Edge TPU:\s*(\d+)")
    cpu = num(r"Number of operations that will run on CPU:\s*(\d+)")
    if tpu is None and total is not None:  # a fully mapped model: the compiler prints only the total
        tpu, cpu = total, 0
    table = Counter()
    for m in re.finditer(r"^([A-Z][A-Z0-9_]+)\s+(\d+)\s+(.+?)\s*$", text, re.MULTILINE):
        table[(m.group(1), m.group(3))] += int(m.group(2))
    return {"compiler_version": version.group(1) if version else None, "ops_total": total, "tpu_ops": tpu,
            "cpu_ops": cpu, "subgraphs": num(r"Number of Edge TPU subgraphs:\s*(\d+)"),
            "operators": [{"op": op, "count": n, "status": status} for (op, status), n in table.items()]}
