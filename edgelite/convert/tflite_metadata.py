"""Standard TFLite Metadata: the ``TFLITE_METADATA`` entry that MediaPipe Tasks and the TFLite Task
Library read, so other tools see our labels and input format without our manifest.

The entry is a ``ModelMetadata`` flatbuffer (file identifier ``M001``) from TensorFlow Lite Support's
published ``metadata_schema.fbs``; its associated files (``labels.txt`` for the output, type
``TENSOR_AXIS_LABELS``) are packed into the ``.tflite`` as a zip archive appended after the model
flatbuffer, as the schema's own populator does. We write it with the ``flatbuffers`` package rather
than ``tflite-support`` (unmaintained, no wheels for our stack) or MediaPipe's ``metadata_writers``
(needs ``opencv-contrib-python``, which clashes with ``opencv-python-headless`` in one venv).

Only the parts we fill are encoded; the slot numbers below are the field order in the schema, which
the schema promises never to change (new fields are appended, file identifier bumped otherwise)::

    >>> fb = standard_metadata({"labels": ["cat", "dog"], "input": {"height": 96, "width": 96},
    ...                         "model": "int8", "precision": "int8"})
    >>> fb[4:8]
    b'M001'
    >>> read_standard_metadata(fb)["input"]["color_space"]
    'RGB'

The reader is standard library only (a device can use it).
"""

from __future__ import annotations

import io
import struct
import zipfile
from typing import Any

from edgelite.convert.flatbuffer import Flatbuffer, read_metadata_entries

STANDARD_NAME = "TFLITE_METADATA"  # the TFLite model metadata entry the readers look for
FILE_IDENTIFIER = b"M001"
MIN_PARSER_VERSION = "1.0.0"  # every field we write exists since schema 1.0.0
LABELS_FILE = "labels.txt"

# enums (metadata_schema.fbs)
TENSOR_AXIS_LABELS = 2
COLOR_SPACES = {0: "UNKNOWN", 1: "RGB", 2: "GRAYSCALE"}
_RGB = 1
_CONTENT_FEATURE, _CONTENT_IMAGE = 1, 2  # ContentProperties union members
_NORMALIZATION = 1  # ProcessUnitOptions union member

# field slots per table (metadata_schema.fbs, in declaration order; a union takes two: type, value)
_MODEL = {"name": 0, "description": 1, "version": 2, "subgraph_metadata": 3, "author": 4, "license": 5,
          "associated_files": 6, "min_parser_version": 7}
_SUBGRAPH = {"name": 0, "description": 1, "input_tensor_metadata": 2, "output_tensor_metadata": 3}
_TENSOR = {"name": 0, "description": 1, "dimension_names": 2, "content": 3, "process_units": 4, "stats": 5,
           "associated_files": 6}
_CONTENT = {"properties_type": 0, "properties": 1, "range": 2}
_IMAGE_PROPS = {"color_space": 0, "default_size": 1}
_IMAGE_SIZE = {"width": 0, "height": 1}
_PROCESS_UNIT = {"options_type": 0, "options": 1}
_NORM = {"mean": 0, "std": 1}
_STATS = {"max": 0, "min": 1}
_FILE = {"name": 0, "description": 1, "type": 2, "locale": 3}


# ------------------------------------------------------------------------------------------ writer
def standard_metadata(meta: dict[str, Any]) -> bytes:
    """The ``ModelMetadata`` flatbuffer for an edgelite classifier described by `meta` (the dict the
    ``edgelite`` entry carries: labels, input, model, precision, quantization, source, backbone)."""
    import flatbuffers

    b = flatbuffers.Builder(1024)
    labels = list(meta["labels"])
    inp = meta.get("input") or {}
    q = (meta.get("quantization") or {}).get("input") or {}
    float_input = q.get("dtype", "uint8").startswith("float")

    def table(fields: list[tuple[str, int, Any]], slots: dict[str, int]) -> int:
        """fields: (name, kind, value) with kind 'off' (an offset already built), 'u8', 'u32'."""
        b.StartObject(max(slots.values()) + 1)
        for name, kind, value in fields:
            if value is None:
                continue
            slot = slots[name]
            if kind == "off":
                b.PrependUOffsetTRelativeSlot(slot, value, 0)
            elif kind == "u8":
                b.PrependUint8Slot(slot, value, 0)
            elif kind == "u32":
                b.PrependUint32Slot(slot, value, 0)
        return b.EndObject()

    def offsets(items: list[int]) -> int:
        b.StartVector(4, len(items), 4)
        for off in reversed(items):
            b.PrependUOffsetTRelative(off)
        return b.EndVector()

    def floats(values: list[float]) -> int:
        b.StartVector(4, len(values), 4)
        for v in reversed(values):
            b.PrependFloat32(float(v))
        return b.EndVector()

    s = b.CreateString
    # input: an RGB image of the model's size; values are raw 0..255 pixels (normalisation is in the graph)
    size = table([("width", "u32", int(inp.get("width", 0))), ("height", "u32", int(inp.get("height", 0)))],
                 _IMAGE_SIZE)
    props = table([("color_space", "u8", _RGB), ("default_size", "off", size)], _IMAGE_PROPS)
    in_content = table([("properties_type", "u8", _CONTENT_IMAGE), ("properties", "off", props)], _CONTENT)
    units = None
    if float_input:  # readers feed float inputs (x - mean) / std: ours want raw pixel values, so 0 and 1
        norm = table([("mean", "off", floats([0.0])), ("std", "off", floats([1.0]))], _NORM)
        units = offsets([table([("options_type", "u8", _NORMALIZATION), ("options", "off", norm)], _PROCESS_UNIT)])
    in_stats = table([("max", "off", floats([255.0])), ("min", "off", floats([0.0]))], _STATS)
    in_name, in_desc = s("image"), s(
        f"RGB image, {inp.get('width')}x{inp.get('height')}, pixel values 0-255 "
        f"({'float32' if float_input else q.get('dtype', 'uint8')}); resize "
        f"{inp.get('resize', 'bilinear')}. Normalisation is inside the model.")
    in_tensor = table([("name", "off", in_name), ("description", "off", in_desc), ("content", "off", in_content),
                       ("process_units", "off", units), ("stats", "off", in_stats)], _TENSOR)

    label_file = table([("name", "off", s(LABELS_FILE)),
                        ("description", "off", s("One label per line, in the order of the output scores.")),
                        ("type", "u8", TENSOR_AXIS_LABELS)], _FILE)
    feature = table([], {"_": 0})  # FeatureProperties: an empty table
    out_content = table([("properties_type", "u8", _CONTENT_FEATURE), ("properties", "off", feature)], _CONTENT)
    out_stats = table([("max", "off", floats([1.0])), ("min", "off", floats([0.0]))], _STATS)
    out_name, out_desc = s("probability"), s(f"Probabilities of the {len(labels)} labels (softmax).")
    out_tensor = table([("name", "off", out_name), ("description", "off", out_desc), ("content", "off", out_content),
                        ("stats", "off", out_stats), ("associated_files", "off", offsets([label_file]))], _TENSOR)

    subgraph = table([("name", "off", s("image_classifier")),
                      ("input_tensor_metadata", "off", offsets([in_tensor])),
                      ("output_tensor_metadata", "off", offsets([out_tensor]))], _SUBGRAPH)
    from edgelite import __version__

    source, backbone = meta.get("source") or "model", meta.get("backbone") or "unknown backbone"
    name = s(f"{source} ({meta.get('model', meta.get('precision', '?'))})")
    desc = s(f"Image classifier over {len(labels)} labels ({', '.join(labels[:8])}{', ...' if len(labels) > 8 else ''}); "
             f"{backbone}, {meta.get('precision', '?')} weights. Written by edgelite {__version__}.")
    model = table([("name", "off", name), ("description", "off", desc),
                   ("version", "off", s(str(meta.get("version") or __version__))),
                   ("subgraph_metadata", "off", offsets([subgraph])), ("author", "off", s("edgelite")),
                   ("min_parser_version", "off", s(MIN_PARSER_VERSION))], _MODEL)
    b.Finish(model, file_identifier=FILE_IDENTIFIER)
    return bytes(b.Output())


def associated_files(meta: dict[str, Any]) -> dict[str, bytes]:
    """The files the metadata names, to pack into the model: {name: bytes}."""
    return {LABELS_FILE: ("\n".join(meta["labels"]) + "\n").encode("utf-8")}


def pack_associated_files(model: bytes, files: dict[str, bytes]) -> bytes:
    """`model` (a bare flatbuffer, nothing appended) followed by a zip of `files`, stored uncompressed:
    the layout the metadata readers open (they find the zip's central directory from the end)."""
    buf = io.BytesIO(model)
    with zipfile.ZipFile(buf, "a", compression=zipfile.ZIP_STORED) as z:
        for name, data in files.items():
            info = zipfile.ZipInfo(name, date_time=(1980, 1, 1, 0, 0, 0))  # fixed: same input, same bytes
            z.writestr(info, data)
    return buf.getvalue()


# ------------------------------------------------------------------------------------------ reader
def read_standard_metadata(data: bytes) -> dict[str, Any]:
    """Decode a ``ModelMetadata`` flatbuffer (the bytes of the ``TFLITE_METADATA`` entry) into
    {name, description, version, min_parser_version, input: {name, color_space, width, height, mean,
    std}, output: {name, label_files}}. Standard library only; covers the fields edgelite writes."""
    if len(data) < 8 or data[4:8] != FILE_IDENTIFIER:
        raise ValueError("not a TFLite ModelMetadata flatbuffer (no M001 identifier)")
    fb = Flatbuffer(data)
    root = fb.root()
    out: dict[str, Any] = {k: fb.string(root, _MODEL[k]) for k in ("name", "description", "version",
                                                                   "min_parser_version", "author")}
    subgraphs = fb.vector_of_tables(root, _MODEL["subgraph_metadata"])
    if not subgraphs:
        return out
    sg = subgraphs[0]
    inputs = fb.vector_of_tables(sg, _SUBGRAPH["input_tensor_metadata"])
    outputs = fb.vector_of_tables(sg, _SUBGRAPH["output_tensor_metadata"])
    if inputs:
        t = inputs[0]
        d: dict[str, Any] = {"name": fb.string(t, _TENSOR["name"])}
        content = _table(fb, t, _TENSOR["content"])
        if content is not None and fb.scalar(content, _CONTENT["properties_type"], "<B", 0) == _CONTENT_IMAGE:
            props = _table(fb, content, _CONTENT["properties"])
            d["color_space"] = COLOR_SPACES.get(fb.scalar(props, _IMAGE_PROPS["color_space"], "<b", 0), "?")
            size = _table(fb, props, _IMAGE_PROPS["default_size"])
            if size is not None:
                d["width"] = fb.scalar(size, _IMAGE_SIZE["width"], "<I", 0)
                d["height"] = fb.scalar(size, _IMAGE_SIZE["height"], "<I", 0)
        for unit in fb.vector_of_tables(t, _TENSOR["process_units"]):
            if fb.scalar(unit, _PROCESS_UNIT["options_type"], "<B", 0) == _NORMALIZATION:
                norm = _table(fb, unit, _PROCESS_UNIT["options"])
                d["mean"], d["std"] = (_floats(fb, norm, _NORM[k]) for k in ("mean", "std"))
        out["input"] = d
    if outputs:
        t = outputs[0]
        files = [{"name": fb.string(f, _FILE["name"]), "type": fb.scalar(f, _FILE["type"], "<b", 0)}
                 for f in fb.vector_of_tables(t, _TENSOR["associated_files"])]
        out["output"] = {"name": fb.string(t, _TENSOR["name"]),
                         "label_files": [f["name"] for f in files if f["type"] == TENSOR_AXIS_LABELS]}
    return out


def read_associated_files(model: bytes) -> dict[str, bytes]:
    """{name: bytes} of the files packed after a .tflite flatbuffer ({} when there are none)."""
    try:
        with zipfile.ZipFile(io.BytesIO(model)) as z:
            return {n: z.read(n) for n in z.namelist()}
    except zipfile.BadZipFile:
        return {}


def _table(fb: Flatbuffer, table: int, index: int) -> int | None:
    pos = fb._field(table, index)
    return None if pos is None else pos + fb._u32(pos)


def _floats(fb: Flatbuffer, table: int, index: int) -> list[float]:
    pos = fb._field(table, index)
    if pos is None:
        return []
    vec = pos + fb._u32(pos)
    return list(struct.unpack_from(f"<{fb._u32(vec)}f", fb.d, vec + 4))


def read_model_metadata(model: bytes) -> dict[str, Any] | None:
    """The standard metadata of a whole .tflite file, with its labels read from the packed label file
    (``{"labels": [...], ...}``), or None when the file has no ``TFLITE_METADATA`` entry."""
    raw = read_metadata_entries(model).get(STANDARD_NAME)
    if raw is None:
        return None
    out = read_standard_metadata(raw)
    files = read_associated_files(model)
    names = (out.get("output") or {}).get("label_files") or []
    if names and names[0] in files:
        out["labels"] = files[names[0]].decode("utf-8").splitlines()
    return out
