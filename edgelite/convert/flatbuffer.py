"""Just enough of the TFLite flatbuffer wire format to read a model's metadata entries (stdlib only).

`edgelite.convert.metadata` (our ``edgelite`` entry) and `edgelite.convert.tflite_metadata` (the
standard ``TFLITE_METADATA`` entry) both read through it.
"""

from __future__ import annotations

import struct

# field indices in the TFLite schema (tensorflow/compiler/mlir/lite/schema/schema.fbs)
_MODEL_BUFFERS, _MODEL_METADATA = 4, 6
_METADATA_NAME, _METADATA_BUFFER = 0, 1
_BUFFER_DATA, _BUFFER_OFFSET, _BUFFER_SIZE = 0, 1, 2


def read_metadata_entries(data: bytes) -> dict[str, bytes]:
    """{name: buffer bytes} of every metadata entry of a TFLite flatbuffer."""
    if len(data) < 8 or data[4:8] != b"TFL3":
        raise ValueError("not a TFLite flatbuffer (no TFL3 identifier)")
    fb = Flatbuffer(data)
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


class Flatbuffer:
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
