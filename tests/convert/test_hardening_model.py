"""Issue #11 finding 1: `convert` never runs code stored in a model file it was handed. tf-keras honours
safe_mode for zip .keras files only; an HDF5 model (.h5, or HDF5 renamed to .keras) with a Lambda layer
ran its stored bytecode. Now such a file is refused (one line, exit 2) unless --trust-model is given."""

from __future__ import annotations

import shutil
import subprocess
import sys

import pytest

from edgelite.convert.errors import ConvertError
from edgelite.convert.source import open_source
from tests.convert.convertkit import tiny_model


@pytest.fixture(scope="module")
def evil(tmp_path_factory):
    """(an HDF5 model whose Lambda layer writes `marker` when it runs, the marker path)."""
    import tf_keras as keras

    root = tmp_path_factory.mktemp("evil")
    marker = root / "pwned"
    # the code is stored in the file as bytecode: the marker's path must be a literal inside it
    fn = eval(f"lambda x: (__import__('pathlib').Path({str(marker)!r}).write_text('pwned'), x)[1]")  # noqa: S307
    model = tiny_model(extra_layer=keras.layers.Lambda(fn, name="evil"))
    model.save(root / "evil.h5")
    marker.unlink(missing_ok=True)  # building the model ran it once, here, on purpose
    shutil.copy(root / "evil.h5", root / "renamed.keras")
    return root, marker


@pytest.mark.parametrize("name", ["evil.h5", "renamed.keras"])
def test_an_hdf5_model_is_refused_without_running_it(evil, tiny, name):
    root, marker = evil
    with pytest.raises(ConvertError, match="--trust-model"):
        open_source(root / name, tiny["data"])
    assert not marker.exists(), "the model's stored code ran"


def test_the_cli_refuses_it_in_one_line(evil, tiny, tmp_path):
    root, marker = evil
    env = {"PYTHONPATH": ":".join(sys.path), "TF_USE_LEGACY_KERAS": "1", "TF_CPP_MIN_LOG_LEVEL": "2",
           "PATH": "/usr/bin:/bin"}
    p = subprocess.run([sys.executable, "-m", "edgelite", "convert", str(root / "evil.h5"), "--data",
                        str(tiny["data"]), "--out", str(tmp_path / "out"), "--formats", "fp32"],
                       capture_output=True, text=True, timeout=300, env=env)
    assert p.returncode == 2 and "Traceback" not in p.stderr, p.stderr[-1500:]
    assert "--trust-model" in p.stderr and not marker.exists()


def test_trust_model_loads_an_hdf5_file_the_user_made(tiny, tmp_path):
    path = tmp_path / "mine.h5"
    tiny_model().save(path)
    src = open_source(path, tiny["data"], trust_model=True)
    assert src.trust_model and src.load_model().outputs[0].shape[-1] == 4
