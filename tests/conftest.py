"""Shared test set-up: TensorFlow quiet and in legacy-Keras mode before anything imports it."""

import os

os.environ.setdefault("TF_USE_LEGACY_KERAS", "1")
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import shutil  # noqa: E402
import subprocess  # noqa: E402
import sys  # noqa: E402
from pathlib import Path  # noqa: E402

import pytest  # noqa: E402

from tests.sshkit import root_sshd  # noqa: E402,F401  (a real sshd on 127.0.0.1, for tests/bench and tests/remote)


@pytest.fixture(scope="session")
def tiny_bundle_built(tmp_path_factory) -> Path:
    """The tiny int8 colour classifier (tests/deploy/bundlekit.py, TensorFlow in a subprocess), built once per
    run for the deploy, fleet and VM tests; each takes a copy (`tiny_copy`), never this folder."""
    root = Path(__file__).resolve().parent.parent
    out = tmp_path_factory.mktemp("tiny-built") / "tiny"
    r = subprocess.run([sys.executable, str(root / "tests" / "deploy" / "bundlekit.py"), str(out)],
                       capture_output=True, text=True, cwd=root, env={**os.environ, "TF_CPP_MIN_LOG_LEVEL": "2"},
                       timeout=600)
    assert r.returncode == 0, r.stderr[-2000:]
    return out


def tiny_copy(built: Path, dest: Path) -> Path:
    shutil.copytree(built, dest)
    return dest


#: test folders whose session fixtures are heavy (a trained model, sshd users, a fleet of sshds, the emulated
#: Pi): under pytest-xdist (`make test`: -n 3 --dist loadgroup) each runs whole in one worker, so they are made
#: once; the other folders' tests spread over the workers one by one
WHOLE = {"adapt", "convert", "deploy", "fleet", "train", "vm"}


def pytest_collection_modifyitems(config, items):
    tests = Path(__file__).resolve().parent
    for item in items:
        try:
            parts = Path(str(item.path)).resolve().relative_to(tests).parts
        except ValueError:  # a doctest of edgelite/
            continue
        if len(parts) > 1 and parts[0] in WHOLE:
            item.add_marker(pytest.mark.xdist_group(parts[0]))
