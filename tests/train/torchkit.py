"""Write torch ``.pth`` files (legacy and zip layouts) without torch, for the reader's hostile-input tests.

`write_pth(path, {name: Tensor}, zip_format=...)` pickles the tensors the way ``torch.save`` does: a
``torch._utils._rebuild_tensor_v2`` call per tensor, storages as persistent ids, their bytes after the
pickle (legacy) or as ``archive/data/<key>`` records (zip). Offsets, sizes, strides and element counts
are written as given, so a test can declare what a hostile file declares.
"""

from __future__ import annotations

import collections
import contextlib
import io
import pickle
import struct
import sys
import types
import zipfile

import numpy as np

LEGACY_MAGIC = 0x1950A86A20F9469CFC6C
LEGACY_PROTOCOL = 1001
_TYPES = {np.dtype(np.float32): "FloatStorage", np.dtype(np.int64): "LongStorage"}


class Storage:
    def __init__(self, key: str, array: np.ndarray, numel=None):
        self.key, self.array = key, array
        self.numel = array.size if numel is None else numel  # what the file declares


class Tensor:
    def __init__(self, storage: Storage, offset, size, stride):
        self.storage, self.offset, self.size, self.stride = storage, offset, size, stride

    def __reduce__(self):
        return (sys.modules["torch._utils"]._rebuild_tensor_v2,
                (self.storage, self.offset, self.size, self.stride, False, collections.OrderedDict()))


@contextlib.contextmanager
def _fake_torch():
    """Just enough of a `torch` module for pickle to write references to its globals."""
    torch, utils = types.ModuleType("torch"), types.ModuleType("torch._utils")
    for name in _TYPES.values():
        cls = type(name, (), {})
        cls.__module__, cls.__qualname__ = "torch", name
        setattr(torch, name, cls)

    def _rebuild_tensor_v2(*args):
        raise AssertionError("never called while writing")

    _rebuild_tensor_v2.__module__, _rebuild_tensor_v2.__qualname__ = "torch._utils", "_rebuild_tensor_v2"
    utils._rebuild_tensor_v2 = _rebuild_tensor_v2
    torch._utils = utils
    saved = {k: sys.modules.get(k) for k in ("torch", "torch._utils")}
    sys.modules.update({"torch": torch, "torch._utils": utils})
    try:
        yield torch
    finally:
        for k, v in saved.items():
            if v is None:
                sys.modules.pop(k, None)
            else:
                sys.modules[k] = v


def pth_bytes(tensors: dict, *, zip_format: bool, compress: bool = False) -> bytes:
    """The bytes of a .pth holding `tensors` ({name: Tensor}); `compress` deflates the zip's records."""
    storages = {}
    for t in tensors.values():
        storages[t.storage.key] = t.storage
    with _fake_torch() as torch:
        class Pickler(pickle.Pickler):
            def persistent_id(self, obj):
                if isinstance(obj, Storage):
                    return ("storage", getattr(torch, _TYPES[obj.array.dtype]), obj.key, "cpu", obj.numel)
                return None

        buf = io.BytesIO()
        Pickler(buf, protocol=2).dump(collections.OrderedDict(tensors))
        out = io.BytesIO()
        if zip_format:
            method = zipfile.ZIP_DEFLATED if compress else zipfile.ZIP_STORED
            with zipfile.ZipFile(out, "w", compression=method) as zf:
                zf.writestr("archive/data.pkl", buf.getvalue())
                zf.writestr("archive/byteorder", "little")
                for s in storages.values():
                    zf.writestr(f"archive/data/{s.key}", s.array.astype(s.array.dtype.newbyteorder("<")).tobytes())
            return out.getvalue()
        for obj in (LEGACY_MAGIC, LEGACY_PROTOCOL, {"protocol_version": LEGACY_PROTOCOL, "little_endian": True}):
            pickle.dump(obj, out, protocol=2)
        out.write(buf.getvalue())
        pickle.dump(list(storages), out, protocol=2)
        for s in storages.values():
            count = s.numel if isinstance(s.numel, int) and -(1 << 63) <= s.numel < (1 << 63) else s.array.size
            out.write(struct.pack("<q", count) + s.array.astype(s.array.dtype.newbyteorder("<")).tobytes())
        return out.getvalue()


def sample_state_dict() -> dict:
    """A small real-looking state_dict: a conv weight, a transposed view, a bias, a counter."""
    w = Storage("0", np.arange(2 * 3 * 3 * 3, dtype=np.float32) / 7)
    b = Storage("1", np.linspace(-1, 1, 16, dtype=np.float32))
    n = Storage("2", np.array([12345], dtype=np.int64))
    return {"conv.weight": Tensor(w, 0, (2, 3, 3, 3), (27, 9, 3, 1)),
            "fc.weight_t": Tensor(b, 0, (4, 4), (1, 4)),
            "fc.bias": Tensor(b, 12, (4,), (1,)),
            "bn.num_batches_tracked": Tensor(n, 0, (), ())}
