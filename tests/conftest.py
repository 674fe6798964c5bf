"""Shared test set-up: TensorFlow quiet and in legacy-Keras mode before anything imports it."""

import os

os.environ.setdefault("TF_USE_LEGACY_KERAS", "1")
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import subprocess  # noqa: E402
import sys  # noqa: E402
from pathlib import Path  # noqa: E402

import pytest  # noqa: E402

from tests.sshkit import root_sshd  # noqa: E402,F401  (a real sshd on 127.0.0.1, for tests/bench and tests/remote)


@pytest.fixture(scope="session")
def tiny_bundle_built(tmp_path_factory) -> Path:
    """The tiny int8 colour classifier (tests/deploy/bundlekit.py, TensorFlow in a subprocess), built once per
    run for the deploy, fleet and VM tests; each takes a copy (`shutil.copytree`), never this folder."""
    root = Path(__file__).resolve().parent.parent
    out = tmp_path_factory.mktemp("tiny-built") / "tiny"
    r = subprocess.run([sys.executable, str(root / "tests" / "deploy" / "bundlekit.py"), str(out)],
                       capture_output=True, text=True, cwd=root, env={**os.environ, "TF_CPP_MIN_LOG_LEVEL": "2"},
                       timeout=600)
    assert r.returncode == 0, r.stderr[-2000:]
    return out


#: test folders whose session fixtures are heavy (a trained model, sshd users, a fleet of sshds, the emulated
#: Pi): under pytest-xdist (`make test`: -n 3 --dist loadscope) each runs whole in one worker, so they are made
#: once; the other tests spread over the workers a file at a time
WHOLE = {"adapt", "convert", "deploy", "fleet", "train", "vm"}


def scope_of(nodeid: str) -> str:
    """The unit xdist hands to one worker: a WHOLE folder, else the test's file.

    >>> scope_of("tests/vm/test_vm_pick.py::test_bench_pick_on_the_device"), scope_of("tests/device/test_run_loop.py::test_x")
    ('tests/vm', 'tests/device/test_run_loop.py')
    """
    path = nodeid.split("::", 1)[0]
    parts = path.split("/")
    return "/".join(parts[:2]) if len(parts) > 2 and parts[0] == "tests" and parts[1] in WHOLE else path


def pytest_xdist_make_scheduler(config, log):
    """--dist loadscope by `scope_of`: xdist 3.8's loadgroup writes its group into `item._nodeid`, which pytest
    9.2 no longer reads, so `xdist_group` marks are silently ignored (pytest-dev/pytest-xdist#1386)."""
    if config.getvalue("dist") != "loadscope":
        return None
    from xdist.scheduler import LoadScopeScheduling

    class FolderScheduling(LoadScopeScheduling):
        def _split_scope(self, nodeid: str) -> str:
            return scope_of(nodeid)

    return FolderScheduling(config, log)
