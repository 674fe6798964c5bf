"""TensorFlow's environment is set in one place, and its start-up noise stays off a CPU-only user's screen
without hiding what the user asked to see or a real error."""

from __future__ import annotations

import os
import subprocess
import sys

import pytest

from edgelite.train import tfenv

NOISE = ("WARNING: All log messages before absl::InitializeLog() is called are written to STDERR\n"
         "I0000 00:00:1796066765.895091    8348 port.cc:153] oneDNN custom operations are on. You may see slightly "
         "different numerical results due to floating-point round-off errors.\n"
         "I0000 00:00:1796066765.895413    8348 cudart_stub.cc:31] Could not find cuda drivers on your machine, "
         "GPU will not be used.\n"
         "E0000 00:00:1796066767.604317    8348 cuda_platform.cc:52] failed call to cuInit: INTERNAL: CUDA error: "
         "Failed call to cuInit: UNKNOWN ERROR (303)\n")


def _python(code: str, **env: str) -> subprocess.CompletedProcess:
    clean = {k: v for k, v in os.environ.items() if k not in ("TF_USE_LEGACY_KERAS", "TF_CPP_MIN_LOG_LEVEL")}
    return subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=300,
                          env={**clean, **env})


def test_importing_tensorflow_through_tfenv_prints_nothing_on_stderr():
    """On this CPU-only machine a bare `import tensorflow` prints oneDNN/CUDA lines and a cuInit error."""
    p = _python("from edgelite.train.tfenv import import_keras, import_tensorflow\n"
                "tf = import_tensorflow(); keras = import_keras()\n"
                "import os; print(os.environ['TF_USE_LEGACY_KERAS'], os.environ['TF_CPP_MIN_LOG_LEVEL'])\n"
                "print(float(tf.reduce_sum(keras.layers.Dense(2)(tf.ones((1, 3))) * 0)))\n")
    assert p.returncode == 0, p.stderr
    assert p.stderr == ""
    assert p.stdout.split() == ["1", "2", "0.0"]  # the environment was set; TensorFlow and Keras work


def test_the_users_own_log_level_wins():
    p = _python("from edgelite.train.tfenv import import_tensorflow; import_tensorflow()", TF_CPP_MIN_LOG_LEVEL="0")
    assert p.returncode == 0
    assert "] " in p.stderr  # TensorFlow's own start-up lines, as the user asked for them


def test_importing_tfenv_imports_no_tensorflow():
    p = _python("import sys, edgelite.train.tfenv, edgelite.train.rundir, edgelite.train.finetune\n"
                "print(sorted(m for m in ('tensorflow', 'tf_keras', 'yaml', 'matplotlib') if m in sys.modules))")
    assert p.returncode == 0, p.stderr
    assert p.stdout.strip() == "[]"


@pytest.mark.parametrize("level, shown", [
    (2, []),
    (1, []),  # no CUDA driver: cuInit's failure says nothing new
    (0, ["oneDNN", "Could not find cuda drivers", "failed call to cuInit"]),  # the user asked for everything
])
def test_filter_applies_the_log_level_to_absl_pre_init_lines(level, shown):
    kept = tfenv.filter_startup_log(NOISE, min_level=level)
    assert [s for s in ("oneDNN", "Could not find cuda drivers", "failed call to cuInit") if s in kept] == shown
    assert "absl::InitializeLog" not in kept


def test_filter_keeps_real_errors_warnings_and_anything_else():
    text = ("E0000 00:00:1.2  7 op_kernel.cc:1857] OP_REQUIRES failed: out of memory\n"
            "W0000 00:00:1.3  7 loader.cc:10] a warning\n"
            "/usr/lib/python3/site-packages/x.py:3: DeprecationWarning: something\n"
            "Traceback (most recent call last):\n")
    assert tfenv.filter_startup_log(NOISE + text, min_level=1) == text
    assert "a warning" not in tfenv.filter_startup_log(text, min_level=2)
    # with a CUDA driver present, a failed cuInit is a real problem and is shown
    with_driver = NOISE.replace("Could not find cuda drivers", "Found a driver")
    assert "failed call to cuInit" in tfenv.filter_startup_log(with_driver, min_level=2)


def test_the_filtered_block_writes_back_what_is_kept(capfd):
    with tfenv._startup_log_filtered():
        os.write(2, NOISE.encode())
        print("a real message", file=sys.stderr)
    assert capfd.readouterr().err == "a real message\n"


def test_the_filtered_block_still_shows_output_when_the_import_fails(capfd):
    with pytest.raises(ImportError), tfenv._startup_log_filtered():
        os.write(2, b"libfoo.so: cannot open shared object file\n")
        raise ImportError("no tensorflow")
    assert capfd.readouterr().err == "libfoo.so: cannot open shared object file\n"
