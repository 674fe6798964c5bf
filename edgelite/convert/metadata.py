"""edgelite metadata inside a .tflite file: labels + input spec, so a lone file knows what it outputs.

The TFLite flatbuffer has a ``metadata`` list of (name, buffer index) entries. We add one named
``edgelite`` whose buffer is UTF-8 JSON::

    {"edgelite": 1, "labels": [...], "input": {height, width, channels, color, dtype, resize, crop},
     "model": "int8", "precision": "int8", "quantization": {...}}

The writer uses TensorFlow's ``flatbuffer_utils`` (convert time); the reader below is standard
library only, so a device (or anyone with just the file) can read it back (skipped as a doctest: it needs a converted .tflite file)::

    >>> meta = read_metadata("model_int8.tflite")            # doctest: +SKIP
    >>> meta["labels"][:2], meta["input"]["height"]           # doctest: +SKIP
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

from edgelite.convert.flatbuffer import read_metadata_entries

METADATA_NAME = "edgelite"
METADATA_VERSION = 1


def embed_metadata(model: bytes, meta: dict[str, Any]) -> bytes:
    """Return `model` (a .tflite flatbuffer) with `meta` stored as its ``edgelite`` metadata entry,
    and the same facts as standard TFLite Metadata (``TFLITE_METADATA`` + the labels file packed
    after the flatbuffer; see ``edgelite.convert.tflite_metadata``) for MediaPipe and the Task Library.

    Existing ``edgelite`` / ``TFLITE_METADATA`` entries are replaced, other entries
    (``min_runtime_version``, ``CONVERSION_METADATA``, ...) are kept.
    """
    from tensorflow.lite.tools import flatbuffer_utils

    import edgelite.convert.tflite_metadata as std

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
