"""edgelite metadata inside a .tflite file: labels + input spec, so a lone file knows what it outputs.

The TFLite flatbuffer has a ``metadata`` list of (name, buffer index) entries. We add one named
``edgelite`` whose buffer is UTF-8 JSON::

    {"edgelite": 1, "labels": [...], "input": {height, width, channels, color, dtype, resize, crop},
     "model": "int8", "precision": "int8", "quantization": {...}}

The writer uses TensorFlow's ``flatbuffer_utils`` (convert time); the reader below is standard
library only, so a device (or anyone with just the file) can read it back::

    >>> meta = read_metadata("model_int8.tflite")            # doctest: +SKIP
    >>> meta["labels"][:2], meta["input"]["height"]           # doctest: +SKIP
"""

from __future__ import annotations

import json
import os
import struct
from pathlib import Path
from typing import Any

METADATA_NAME = "edgelite"
METADATA_VERSION = 1

# field indices in the TFLite schema (tensorflow/compiler/mlir/lite/schema/schema.fbs)
_MODEL_BUFFERS, _MODEL_METADATA = 4, 6
_METADATA_NAME, _METADATA_BUFFER = 0, 1
_BUFFER_DATA, _BUFFER_OFFSET, _BUFFER_SIZE = 0, 1, 2


def embed_metadata(model: bytes, meta: dict[str, Any]) -> bytes:
    """Return `model` (a .tflite flatbuffer) with `meta` stored as its ``edgelite`` metadata entry,
    and the same facts as standard TFLite Metadata (``TFLITE_METADATA`` + the labels file packed
    after the flatbuffer; see ``edgelite.convert.tflite_metadata``) for MediaPipe and the Task Library.

    Existing ``edgelite`` / ``TFLITE_METADATA`` entries are replaced, other entries
    (``min_runtime_version``, ``CONVERSION_METADATA``, ...) are kept.
    """
    from tensorflow.lite.tools import flatbuffer_utils

    from edgelite.convert import tflite_metadata as std

    # reading drops whatever was appended after the flatbuffer (an older labels zip): re-packed below
    obj = flatbuffer_utils.convert_bytearray_to_object(bytearray(model))
    payload = json.dumps({"edgelite": METADATA_VERSION, **meta}, sort_keys=True).encode("utf-8")
    _set_entry(obj, METADATA_NAME, payload)
    _set_entry(obj, std.STANDARD_NAME, std.standard_metadata(meta))
    data = bytes(flatbuffer_utils.convert_object_to_bytearray(obj))
    return std.pack_associated_files(data, std.associated_files(meta))


def _set_entry(obj, name: str, payload: bytes) -> None:
    from tensorflow.lite.python import schema_py_generated as schema_fb

    old = [m for m in (obj.metadata or []) if _name(m.name) == name]
    if old:  # rewrite our own buffer in place: re-embedding leaves no orphaned copy behind
        obj.buffers[old[0].buffer].data = list(payload)
        return
    buf = schema_fb.BufferT()
    buf.data = list(payload)  # the object API packs a list of ints as a [ubyte] vector
    obj.buffers.append(buf)
    entry = schema_fb.MetadataT()
    entry.name = name
    entry.buffer = len(obj.buffers) - 1
    obj.metadata = list(obj.metadata or []) + [entry]


def _name(n) -> str:
    return n.decode("utf-8") if isinstance(n, bytes) else str(n)


# ------------------------------------------------------------------------------------------ reader
def read_metadata(path: str | os.PathLike | bytes) -> dict[str, Any] | None:
    """The ``edgelite`` metadata of a .tflite file (path or bytes), or None when it has none.

    Standard library only. Raises ValueError for a file that is not a TFLite flatbuffer.
    """
    data = Path(path).read_bytes() if not isinstance(path, (bytes, bytearray)) else bytes(path)
    raw = read_metadata_entries(data).get(METADATA_NAME)
    if raw is None:
        return None
    try:
        return json.loads(raw.decode("utf-8"))
    except (UnicodeDecodeError, json.JSONDecodeError) as e:
        raise ValueError(f"edgelite metadata is not valid JSON ({e})") from None


def read_metadata_entries(data: bytes) -> dict[str, bytes]:
    """{name: buffer bytes} of every metadata entry of a TFLite flatbuffer."""
    if len(data) < 8 or data[4:8] != b"TFL3":
        raise ValueError("not a TFLite flatbuffer (no TFL3 identifier)")
    fb = _Flatbuffer(data)
    model = fb.root()
    buffers = fb.vector_of_tables(model, _MODEL_BUFFERS)
    out: dict[str, bytes] = {}
    for entry in fb.vector_of_tables(model, _MODEL_METADATA):
        name = fb.string(entry, _METADATA_NAME)
        index = fb.scalar(entry, _METADATA_BUFFER, "<I", 0)
        if name is None or index >= len(buffers):
            continue
        buf = buffers[index]
        offset = fb.scalar(buf, _BUFFER_OFFSET, "<Q", 0)
        if offset > 1:  # large models keep buffers after the flatbuffer, addressed by offset/size
            size = fb.scalar(buf, _BUFFER_SIZE, "<Q", 0)
            out[name] = data[offset : offset + size]
        else:
            out[name] = fb.bytes_vector(buf, _BUFFER_DATA) or b""
    return out


class _Flatbuffer:
    """Just enough of the flatbuffers wire format to walk tables, vectors and strings."""

    def __init__(self, data: bytes):
        self.d = data

    def _u32(self, pos: int) -> int:
        return struct.unpack_from("<I", self.d, pos)[0]

    def root(self) -> int:
        return self._u32(0)

    def _field(self, table: int, index: int) -> int | None:
        vtable = table - struct.unpack_from("<i", self.d, table)[0]
        vt_size = struct.unpack_from("<H", self.d, vtable)[0]
        slot = 4 + 2 * index
        if slot >= vt_size:
            return None
        off = struct.unpack_from("<H", self.d, vtable + slot)[0]
        return table + off if off else None

    def scalar(self, table: int, index: int, fmt: str, default):
        pos = self._field(table, index)
        return default if pos is None else struct.unpack_from(fmt, self.d, pos)[0]

    def _vector(self, table: int, index: int) -> tuple[int, int] | None:
        pos = self._field(table, index)
        if pos is None:
            return None
        vec = pos + self._u32(pos)
        return vec + 4, self._u32(vec)

    def vector_of_tables(self, table: int, index: int) -> list[int]:
        v = self._vector(table, index)
        if v is None:
            return []
        start, n = v
        return [start + 4 * i + self._u32(start + 4 * i) for i in range(n)]

    def bytes_vector(self, table: int, index: int) -> bytes | None:
        v = self._vector(table, index)
        return None if v is None else self.d[v[0] : v[0] + v[1]]

    def string(self, table: int, index: int) -> str | None:
        b = self.bytes_vector(table, index)
        return None if b is None else b.decode("utf-8", "replace")
