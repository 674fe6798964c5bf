"""Issue #11 finding 2: the `.pth` reader refuses memory bombs and odd values with TorchFileError (an
EdgeliteError, so one line from the CLI), and still reads real state_dicts, transposed views included."""

from __future__ import annotations

import numpy as np
import pytest

from edgelite.errors import EdgeliteError
from edgelite.train.torch_weights import TorchFileError, load_legacy_torch_state_dict
from tests.train.torchkit import Storage, Tensor, pth_bytes, sample_state_dict

FORMATS = pytest.mark.parametrize("zip_format", [False, True], ids=["legacy", "zip"])


def _load(tmp_path, data: bytes):
    path = tmp_path / "w.pth"
    path.write_bytes(data)
    return load_legacy_torch_state_dict(path)


@FORMATS
def test_a_real_state_dict_still_reads(tmp_path, zip_format):
    sd = _load(tmp_path, pth_bytes(sample_state_dict(), zip_format=zip_format))
    assert sd["conv.weight"].shape == (2, 3, 3, 3) and sd["fc.weight_t"].shape == (4, 4)
    np.testing.assert_array_equal(sd["fc.weight_t"], np.linspace(-1, 1, 16, dtype=np.float32).reshape(4, 4).T)
    assert int(sd["bn.num_batches_tracked"]) == 12345


@FORMATS
@pytest.mark.parametrize("side", [8192, 1 << 20])
def test_a_stride_0_tensor_over_one_float_is_refused(tmp_path, zip_format, side):
    """494 bytes declaring side x side over one stored float: 256 MiB (8192) or a MemoryError (2^20) before."""
    one = Storage("0", np.ones(1, np.float32))
    data = pth_bytes({"w": Tensor(one, 0, (side, side), (0, 0))}, zip_format=zip_format)
    assert len(data) < 1000
    with pytest.raises(TorchFileError, match="elements|overlap"):
        _load(tmp_path, data)


@FORMATS
def test_overlapping_strides_are_refused(tmp_path, zip_format):
    s = Storage("0", np.arange(64, dtype=np.float32))
    with pytest.raises(TorchFileError, match="overlap"):
        _load(tmp_path, pth_bytes({"w": Tensor(s, 0, (8, 8), (1, 1))}, zip_format=zip_format))


@FORMATS
@pytest.mark.parametrize("field", ["size", "stride", "offset", "numel"])
def test_text_and_float_values_are_refused(tmp_path, zip_format, field):
    s = Storage("0", np.arange(16, dtype=np.float32), numel="16" if field == "numel" else None)
    t = Tensor(s, 0, (4, 4), (4, 1))
    if field == "size":
        t.size = ("4", 4)
    elif field == "stride":
        t.stride = (4.0, 1)
    elif field == "offset":
        t.offset = "0"
    with pytest.raises(TorchFileError):
        _load(tmp_path, pth_bytes({"w": t}, zip_format=zip_format))


def test_a_deflated_storage_record_is_refused(tmp_path):
    """torch stores records uncompressed; a deflated one inflated 255 KB into 545 MiB."""
    zeros = Storage("0", np.zeros(1 << 20, np.float32))  # 4 MiB that deflate to ~4 KB
    data = pth_bytes({"w": Tensor(zeros, 0, (1 << 20,), (1,))}, zip_format=True, compress=True)
    assert len(data) < 64 * 1024
    with pytest.raises(TorchFileError, match="compressed"):
        _load(tmp_path, data)


def test_one_storage_named_many_times_is_refused(tmp_path):
    s = Storage("0", np.zeros(1 << 16, np.float32))
    tensors = {f"w{i}": Tensor(s, 0, (1 << 16,), (1,)) for i in range(64)}
    with pytest.raises(TorchFileError, match="repeat"):
        _load(tmp_path, pth_bytes(tensors, zip_format=False))


def test_torch_file_error_is_an_edgelite_error():
    assert issubclass(TorchFileError, EdgeliteError) and TorchFileError("x").exit_code == 2
