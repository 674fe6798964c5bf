"""Read a PyTorch ``.pth`` state_dict into numpy arrays without importing torch.

A ``.pth`` file is a pickle, and unpickling runs whatever callables the file names. The reader
below therefore uses a restricted unpickler that resolves only the handful of globals a plain
``torch.save(model.state_dict())`` needs (the tensor rebuild function, the typed storage classes
and ``collections.OrderedDict``); any other global is refused before it is imported.

Two on-disk layouts exist:

* legacy (torch < 1.6, and ``_use_new_zipfile_serialization=False``): five pickles in a row —
  magic number, protocol version, sys_info, the object (tensors refer to storages through
  persistent ids), the list of storage keys — then, per key, an int64 element count and the raw
  storage bytes;
* zip (torch >= 1.6): ``<prefix>/data.pkl`` plus one ``<prefix>/data/<key>`` record per storage.

Both are read here; the result is ``{name: numpy.ndarray}``.
"""

from __future__ import annotations

import collections
import io
import os
import pickle
import struct
import zipfile

import numpy as np

from edgelite.errors import first_line
from edgelite.train.errors import TrainError

__all__ = ["TorchFileError", "load_legacy_torch_state_dict"]

LEGACY_MAGIC = 0x1950A86A20F9469CFC6C
LEGACY_PROTOCOL = 1001

# torch storage class name -> numpy dtype (byte order added at read time); bfloat16 is read as
# uint16 and widened to float32 because numpy has no bfloat16.
_STORAGE_DTYPES = {
    "DoubleStorage": "f8",
    "FloatStorage": "f4",
    "HalfStorage": "f2",
    "BFloat16Storage": "u2",
    "LongStorage": "i8",
    "IntStorage": "i4",
    "ShortStorage": "i2",
    "CharStorage": "i1",
    "ByteStorage": "u1",
    "BoolStorage": "?",
}


class TorchFileError(TrainError, pickle.UnpicklingError):
    """The file is not a torch state_dict this reader accepts (forbidden global, truncated, ...).

    A TrainError (one line from the CLI, exit code 2) and still a pickle.UnpicklingError for callers
    that read pickles generically."""


class _StorageType:
    """Stands in for ``torch.FloatStorage`` & co.: only its name (and so its dtype) matters."""

    def __init__(self, name: str):
        self.name = name
        self.dtype = _STORAGE_DTYPES[name]


class _Storage:
    def __init__(self, key: str, storage_type: _StorageType, numel: int):
        self.key = key
        self.storage_type = storage_type
        self.numel = numel
        self.array: np.ndarray | None = None  # filled once the raw bytes are read


class _TensorRef:
    """A tensor whose storage bytes come after the pickle (legacy format): resolved later."""

    def __init__(self, storage: _Storage, offset: int, size: tuple, stride: tuple):
        self.storage, self.offset, self.size, self.stride = storage, offset, tuple(size), tuple(stride)


def _is_int(v) -> bool:
    return isinstance(v, int) and not isinstance(v, bool)


def _rebuild_tensor_v2(storage, storage_offset, size, stride, requires_grad=False, backward_hooks=None,
                       metadata=None):
    if not isinstance(storage, _Storage):
        raise TorchFileError("_rebuild_tensor_v2 called without a storage: not a plain state_dict")
    # ints only: a text or float size must not reach numpy (a TypeError there, or a huge allocation)
    if not (_is_int(storage_offset) and isinstance(size, (tuple, list)) and isinstance(stride, (tuple, list))
            and len(size) == len(stride) <= 16 and all(map(_is_int, size)) and all(map(_is_int, stride))):
        raise TorchFileError("a tensor's offset, size and stride are not whole numbers: the file is corrupt")
    return _TensorRef(storage, storage_offset, size, stride)


def _rebuild_parameter(data, requires_grad=False, backward_hooks=None):
    return data  # an nn.Parameter is its tensor for our purposes


_ALLOWED_GLOBALS = {
    ("collections", "OrderedDict"): collections.OrderedDict,
    ("torch._utils", "_rebuild_tensor_v2"): _rebuild_tensor_v2,
    ("torch._utils", "_rebuild_parameter"): _rebuild_parameter,
}


class _RestrictedUnpickler(pickle.Unpickler):
    def __init__(self, file, source: str, storages: dict[str, _Storage] | None = None):
        super().__init__(file)
        self.source = source
        self.storages = storages if storages is not None else {}

    def find_class(self, module, name):
        if (module, name) in _ALLOWED_GLOBALS:
            return _ALLOWED_GLOBALS[(module, name)]
        if module == "torch" and name in _STORAGE_DTYPES:
            return _StorageType(name)
        raise TorchFileError(
            f"{self.source}: refusing to load forbidden global '{module}.{name}' — only tensor "
            "state_dicts (torch.save(model.state_dict())) are read, never arbitrary pickled objects"
        )

    def persistent_load(self, pid):
        # ('storage', storage_type, key, location, numel[, view_metadata]); legacy may add the view
        if not (isinstance(pid, tuple) and len(pid) >= 5 and pid[0] in ("storage", b"storage")):
            raise TorchFileError(f"{self.source}: unsupported persistent id {pid[:1]!r} (not a tensor storage)")
        _, storage_type, key, _location, numel = pid[:5]
        if not isinstance(storage_type, _StorageType):
            raise TorchFileError(f"{self.source}: persistent id without a storage type")
        if len(pid) > 5 and pid[5] is not None:
            raise TorchFileError(f"{self.source}: storage views (torch < 0.4 files) are not supported")
        if not _is_int(numel) or numel < 0:
            raise TorchFileError(f"{self.source}: a storage's element count {str(numel)[:20]!r} is not a whole number")
        key = key.decode("ascii", "replace") if isinstance(key, bytes) else str(key)
        storage = self.storages.get(key)
        if storage is None:
            storage = self.storages[key] = _Storage(key, storage_type, numel)
        return storage


def _storage_array(raw: bytes, storage: _Storage, byteorder: str, source: str) -> np.ndarray:
    code = storage.storage_type.dtype
    dtype = np.dtype(code if code in ("?", "i1", "u1") else byteorder + code)
    need = storage.numel * dtype.itemsize
    if len(raw) < need:
        raise TorchFileError(
            f"{source}: file is truncated (storage {storage.key} needs {need} bytes, found {len(raw)}); "
            "download or reinstall it"
        )
    array = np.frombuffer(raw, dtype=dtype, count=storage.numel)
    if storage.storage_type.name == "BFloat16Storage":
        array = (array.astype(np.uint32) << 16).view(np.float32)
    return array


def _dense(size: tuple, stride: tuple) -> bool:
    """True when the strides lay the elements out without overlap or gaps, in some order of the dims
    (torch's "non-overlapping and dense": contiguous, or a transpose/permutation of it).

    A stride of 0 (one stored float seen as a 8192 x 8192 tensor) or overlapping strides would make the
    copy far larger than the file; a dense tensor is never larger than the storage it reads.

    >>> _dense((2, 3), (3, 1)), _dense((3, 2), (1, 3)), _dense((8192, 8192), (0, 0))
    (True, True, False)
    """
    expected = 1
    for n, st in sorted(((n, st) for n, st in zip(size, stride, strict=True) if n != 1), key=lambda d: d[1]):
        if st != expected:
            return False
        expected *= n
    return True


def _materialise(ref: _TensorRef, source: str) -> np.ndarray:
    base = ref.storage.array
    if base is None:
        raise TorchFileError(f"{source}: storage {ref.storage.key} has no data (file truncated or corrupt)")
    if any(s < 0 for s in ref.size) or any(s < 0 for s in ref.stride):
        raise TorchFileError(f"{source}: negative tensor size or stride")
    count = 1
    for n in ref.size:
        count *= n
    if count > base.size:
        raise TorchFileError(f"{source}: a tensor of {count} elements in storage {ref.storage.key} of {base.size}: "
                             "the file is corrupt")
    if 0 in ref.size:
        return np.zeros(ref.size, dtype=base.dtype)
    if not _dense(ref.size, ref.stride):
        raise TorchFileError(f"{source}: tensor strides {ref.stride[:8]} for size {ref.size[:8]} overlap or leave "
                             "gaps (not a saved state_dict tensor): the file is corrupt")
    last = ref.offset + sum((n - 1) * s for n, s in zip(ref.size, ref.stride, strict=True))
    if ref.offset < 0 or last >= base.size:
        raise TorchFileError(f"{source}: tensor reaches past the end of storage {ref.storage.key}")
    view = np.lib.stride_tricks.as_strided(
        base[ref.offset:], shape=ref.size, strides=[s * base.itemsize for s in ref.stride], writeable=False
    )
    return np.array(view, dtype=base.dtype.newbyteorder("="), order="C")  # own, contiguous, native-endian copy


def _resolve(obj, source: str, budget: list[int] | None = None, depth: int = 0):
    """The object with every tensor reference copied out of its storage.

    `budget`: elements still allowed to be copied. Tensors may share a storage, but a few bytes of
    pickle can name the same storage ten thousand times; copies beyond 4x the stored data are refused.
    """
    if budget is None:
        budget = [4 * sum(_storage_sizes(obj)) + (1 << 20)]
    if depth > 100:
        raise TorchFileError(f"{source}: nested more than 100 levels deep: not a state_dict")
    if isinstance(obj, _TensorRef):
        array = _materialise(obj, source)
        budget[0] -= array.size
        if budget[0] < 0:
            raise TorchFileError(f"{source}: its tensors repeat the stored data many times over: not a state_dict")
        return array
    if isinstance(obj, dict):
        return type(obj)((k, _resolve(v, source, budget, depth + 1)) for k, v in obj.items())
    if isinstance(obj, (list, tuple)):
        return type(obj)(_resolve(v, source, budget, depth + 1) for v in obj)
    return obj


def _storage_sizes(obj):
    """Element counts of the distinct storages the object's tensor references read."""
    seen: dict[int, int] = {}
    stack = [(obj, 0)]
    while stack:
        o, d = stack.pop()
        if isinstance(o, _TensorRef) and o.storage.array is not None:
            seen[id(o.storage)] = o.storage.array.size
        elif isinstance(o, dict) and d < 100:
            stack.extend((v, d + 1) for v in o.values())
        elif isinstance(o, (list, tuple)) and d < 100:
            stack.extend((v, d + 1) for v in o)
    return seen.values()


def _load_legacy(data: bytes, source: str):
    f = io.BytesIO(data)
    try:
        magic = _RestrictedUnpickler(f, source).load()
        if magic != LEGACY_MAGIC:
            raise TorchFileError(f"{source}: not a torch file (bad magic number)")
        protocol = _RestrictedUnpickler(f, source).load()
        if protocol != LEGACY_PROTOCOL:
            raise TorchFileError(f"{source}: unsupported torch protocol version {protocol!r}")
        sys_info = _RestrictedUnpickler(f, source).load()
        byteorder = "<" if not isinstance(sys_info, dict) or sys_info.get("little_endian", True) else ">"
        main = _RestrictedUnpickler(f, source)
        obj = main.load()
        keys = _RestrictedUnpickler(f, source).load()
    except TorchFileError:
        raise
    except (EOFError, pickle.UnpicklingError, ValueError, TypeError, KeyError, IndexError, AttributeError,
            OverflowError, RecursionError, UnicodeDecodeError, struct.error) as e:
        raise TorchFileError(f"{source}: file is truncated or corrupt ({type(e).__name__}: {first_line(e, 120)})") \
            from None
    if not isinstance(keys, list):
        raise TorchFileError(f"{source}: corrupt storage key list")
    if len(keys) != len(set(map(str, keys))):
        raise TorchFileError(f"{source}: a storage is listed twice: the file is corrupt")

    for key in keys:
        storage = main.storages.get(str(key))
        if storage is None:
            raise TorchFileError(f"{source}: storage {key!r} is listed but never used")
        head = f.read(8)
        if len(head) < 8:
            raise TorchFileError(f"{source}: file is truncated (no data for storage {key}); download or reinstall it")
        (count,) = struct.unpack(byteorder + "q", head)
        if count != storage.numel:
            raise TorchFileError(f"{source}: storage {key} holds {count} elements, expected {storage.numel}")
        itemsize = np.dtype(storage.storage_type.dtype).itemsize
        storage.array = _storage_array(f.read(count * itemsize), storage, byteorder, source)
    return _resolve(obj, source)


def _read_stored(zf: zipfile.ZipFile, name: str, source: str) -> bytes:
    """A zip record torch wrote: stored, not compressed (a deflated record can inflate 2000-fold),
    and exactly as long as its header says."""
    info = zf.getinfo(name)
    if info.compress_type != zipfile.ZIP_STORED:
        raise TorchFileError(f"{source}: record {name} is compressed; torch stores its records uncompressed, "
                             "so this is not a file torch.save wrote")
    with zf.open(info) as f:
        raw = f.read(info.file_size + 1)
    if len(raw) != info.file_size:
        raise TorchFileError(f"{source}: record {name} holds {len(raw)} bytes, its header says {info.file_size}")
    return raw


def _load_zip(data: bytes, source: str):
    try:
        with zipfile.ZipFile(io.BytesIO(data)) as zf:
            pkl = [n for n in zf.namelist() if n == "data.pkl" or n.endswith("/data.pkl")]
            if len(pkl) != 1:
                raise TorchFileError(f"{source}: zip file without exactly one data.pkl: not a torch file")
            prefix = pkl[0][: -len("data.pkl")]
            byteorder = "<"
            if prefix + "byteorder" in zf.namelist():
                byteorder = "<" if _read_stored(zf, prefix + "byteorder", source).strip() == b"little" else ">"
            unpickler = _RestrictedUnpickler(io.BytesIO(_read_stored(zf, pkl[0], source)), source)
            obj = unpickler.load()
            for key, storage in unpickler.storages.items():
                name = f"{prefix}data/{key}"
                if name not in zf.namelist():
                    raise TorchFileError(f"{source}: storage record {name} is missing")
                storage.array = _storage_array(_read_stored(zf, name, source), storage, byteorder, source)
    except TorchFileError:
        raise
    except (zipfile.BadZipFile, zipfile.LargeZipFile, EOFError, pickle.UnpicklingError, ValueError, TypeError,
            KeyError, IndexError, AttributeError, OverflowError, RecursionError, NotImplementedError) as e:
        raise TorchFileError(f"{source}: zip file is truncated or corrupt ({type(e).__name__}: {first_line(e, 120)})") \
            from None
    return _resolve(obj, source)


def _find_state_dict(obj, source: str) -> dict[str, np.ndarray]:
    if isinstance(obj, dict) and not any(isinstance(v, np.ndarray) for v in obj.values()):
        for wrapper in ("state_dict", "model_state_dict", "model"):
            if isinstance(obj.get(wrapper), dict):
                obj = obj[wrapper]
                break
    if not isinstance(obj, dict) or not obj:
        raise TorchFileError(f"{source}: holds a {type(obj).__name__}, not a state_dict of tensors")
    out = {}
    for name, value in obj.items():
        if isinstance(value, np.ndarray):
            out[str(name)] = value
    if not out:
        raise TorchFileError(f"{source}: no tensors found")
    return out


def load_legacy_torch_state_dict(path: str | os.PathLike) -> dict[str, np.ndarray]:
    """Read a torch ``state_dict`` file (legacy or zip ``.pth``) into ``{name: ndarray}``, without torch.

    Only tensors, typed storages and ``OrderedDict`` may appear in the pickle; any other global
    raises :class:`TorchFileError` (an ``UnpicklingError``) naming it, before it is imported.
    A ``{"state_dict": {...}}`` wrapper is unwrapped; non-tensor entries are dropped. (The example needs the weights file: skipped as a doctest.)

    >>> sd = load_legacy_torch_state_dict("efficientnet-lite0-57934424.pth")  # doctest: +SKIP
    >>> sd["_conv_stem.weight"].shape  # doctest: +SKIP
    (32, 3, 3, 3)
    """
    source = os.fspath(path)
    with open(source, "rb") as fh:
        data = fh.read()
    try:
        if data[:4] == b"PK\x03\x04":
            obj = _load_zip(data, source)
        elif data[:1] == b"\x80":  # a pickle PROTO opcode: the legacy layout starts with pickles
            obj = _load_legacy(data, source)
        else:
            raise TorchFileError(f"{source}: not a torch .pth file (neither the zip nor the legacy pickle layout)")
    except (OverflowError, ValueError, TypeError, MemoryError) as e:  # numpy on a value no checks above foresaw
        raise TorchFileError(f"{source}: the file is corrupt ({type(e).__name__}: {first_line(e, 120)})") from None
    return _find_state_dict(obj, source)
