"""TensorFlow's environment, set in one place before TensorFlow is imported.

Every workstation module that needs TensorFlow or Keras gets it here (`import_tensorflow`,
`import_keras`) instead of importing it directly, so that

- ``TF_USE_LEGACY_KERAS=1`` is set first (tfmot works only with Keras 2, i.e. tf-keras), and
  ``TF_CPP_MIN_LOG_LEVEL=2`` unless the user chose a level;
- TensorFlow's start-up noise stays off a CPU-only user's screen. At import, TensorFlow's C++
  libraries log through absl *before* absl is initialised, and those lines ignore
  TF_CPP_MIN_LOG_LEVEL: the oneDNN notice and "Could not find cuda drivers" (info), then, when the
  first device is listed, ``E... cuda_platform.cc] failed call to cuInit`` on every machine without
  an NVIDIA driver. `import_tensorflow` captures fd 2 while TensorFlow starts, applies the user's
  TF_CPP_MIN_LOG_LEVEL to those lines itself, drops the cuInit error only when TensorFlow has just
  said there is no CUDA driver (the error then says nothing new), and writes everything else back
  to stderr: a real error or warning still reaches the user.

Nothing here imports TensorFlow at module import (the example does: skipped as a doctest).

    >>> from edgelite.train.tfenv import import_keras     # doctest: +SKIP
    >>> keras = import_keras()                             # doctest: +SKIP
"""

from __future__ import annotations

import contextlib
import os
import re
import sys
import tempfile
from collections.abc import Callable, Iterator

#: set before TensorFlow is imported, unless the user set them
ENVIRONMENT = {
    "TF_USE_LEGACY_KERAS": "1",  # tf.keras is tf-keras (Keras 2): tfmot needs it
    "TF_CPP_MIN_LOG_LEVEL": "2",  # TensorFlow's C++ logging: errors only
}

# an absl log line: severity letter, MMDD, time, thread, file:line] message
_ABSL_LINE = re.compile(r"^([IWEF])\d{4} [\d:.]+\s+\d+ ([\w.]+):\d+\] ?(.*)$")
_SEVERITY = {"I": 0, "W": 1, "E": 2, "F": 3}
_PRE_INIT_BANNER = "WARNING: All log messages before absl::InitializeLog() is called are written to STDERR"
_NO_CUDA_DRIVER = "Could not find cuda drivers on your machine"
_CUINIT_FAILED = "failed call to cuInit"


def set_environment() -> None:
    """Set TensorFlow's environment variables (the user's own values win)."""
    for key, value in ENVIRONMENT.items():
        os.environ.setdefault(key, value)


def import_tensorflow():
    """`tensorflow`, imported after `set_environment` and without its start-up noise (see the module doc)."""
    if "tensorflow" in sys.modules:
        return sys.modules["tensorflow"]
    set_environment()
    with _startup_log_filtered():
        import tensorflow as tf

        tf.config.list_physical_devices()  # the cuInit probe happens here, inside the filter
    return tf


def import_keras():
    """`tf_keras` (Keras 2), after `import_tensorflow`."""
    import_tensorflow()
    import tf_keras

    return tf_keras


def load_keras_model(path: str | os.PathLike, *, trust: bool = False, flag: str = "--trust-model"):
    """A Keras model file loaded (compile=False) without running code stored in it, unless `trust`.

    tf-keras applies `safe_mode` to zip `.keras` files only: an HDF5 model (`.h5`, or HDF5 bytes
    renamed to `.keras`) runs a Lambda layer's stored bytecode. So a file that is not a zip is refused
    unless the user passes `flag`; a zip is loaded inside Keras' safe-mode scope. Raises TrainError.
    """
    import zipfile
    from pathlib import Path

    from edgelite.train.errors import TrainError

    p = Path(path)
    if not trust and p.exists() and not (p.is_file() and zipfile.is_zipfile(p)) and _may_run_code(p):
        kind = "is not a zip .keras file (HDF5 renamed?)" if p.suffix == ".keras" else "is an HDF5 (.h5) model"
        raise TrainError(f"{p} {kind}: loading it can run code stored in it (a Lambda layer). Re-save it as a "
                         f".keras file, or pass {flag} if you made it yourself")
    keras = import_keras()
    from tf_keras.src.saving.serialization_lib import SafeModeScope

    with SafeModeScope(not trust):
        return keras.models.load_model(p, compile=False, safe_mode=not trust)


def _may_run_code(p) -> bool:
    """True for what tf-keras loads without safe mode: a folder (SavedModel) or an HDF5 file. Anything else
    (a damaged zip, random bytes) is left to Keras, which fails on it with its own message."""
    if p.is_dir():
        return True
    try:
        import h5py
    except ImportError:  # cannot tell HDF5 from garbage: anything but a zip is treated as HDF5
        with open(p, "rb") as f:
            return f.read(4) != b"PK\x03\x04"
    return bool(h5py.is_hdf5(str(p)))  # neither zip nor HDF5: Keras refuses it with its own message


def filter_startup_log(text: str, min_level: int | None = None) -> str:
    """The lines of TensorFlow's start-up stderr the user should see, at TF_CPP_MIN_LOG_LEVEL `min_level`.

    absl lines below the level are dropped (as TensorFlow would once absl is initialised), and so is
    its pre-init banner; the cuInit error is dropped when the same start-up said no CUDA driver exists.
    Every other line (Python warnings, tracebacks, anything unknown) is kept.

    >>> filter_startup_log("I0000 00:00:1.5  7 port.cc:153] oneDNN custom operations are on.\\n"
    ...                    "E0000 00:00:1.6  7 some_op.cc:9] a real error\\n", min_level=2)
    'E0000 00:00:1.6  7 some_op.cc:9] a real error\\n'
    """
    if min_level is None:
        min_level = _min_level()
    lines = text.splitlines(keepends=True)
    no_driver = any(_NO_CUDA_DRIVER in line for line in lines)
    kept = []
    for line in lines:
        if line.strip() == _PRE_INIT_BANNER:
            continue
        m = _ABSL_LINE.match(line.rstrip("\n"))
        if m:
            if _SEVERITY[m.group(1)] < min_level:
                continue
            if min_level > 0 and no_driver and _CUINIT_FAILED in m.group(3):
                continue
        kept.append(line)
    return "".join(kept)


def _min_level() -> int:
    try:
        return int(os.environ.get("TF_CPP_MIN_LOG_LEVEL", "0"))
    except ValueError:
        return 0


@contextlib.contextmanager
def captured_stderr() -> Iterator[Callable[[], str]]:
    """Send fd 2 (TensorFlow's C++ logging, and Python's stderr) to a temp file; yields a reader of it.

    `convert` wraps the TFLite converter and tf2onnx in it, so a failure's one-line message can quote
    them; `import_tensorflow` wraps TensorFlow's start-up in it.
    """
    sys.stderr.flush()
    saved = os.dup(2)
    tmp = tempfile.TemporaryFile(mode="w+b")
    os.dup2(tmp.fileno(), 2)

    def read() -> str:
        with contextlib.suppress(OSError, ValueError):
            sys.stderr.flush()
        tmp.seek(0)
        return tmp.read().decode("utf-8", "replace")

    try:
        yield read
    finally:
        with contextlib.suppress(OSError, ValueError):
            sys.stderr.flush()
        os.dup2(saved, 2)
        os.close(saved)
        tmp.close()


@contextlib.contextmanager
def _startup_log_filtered() -> Iterator[None]:
    """Run the block with fd 2 captured, then write back what `filter_startup_log` keeps."""
    text = []
    try:
        with captured_stderr() as read:
            try:
                yield
            finally:
                text.append(read())
    finally:
        kept = filter_startup_log("".join(text))
        if kept:
            sys.stderr.write(kept)
            sys.stderr.flush()
