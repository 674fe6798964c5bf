"""apt's numpy beside the deployed venv, on both OS releases (issues 12 and 21).

On Raspberry Pi OS, picamera2 and simplejpeg come from apt, built against apt's numpy (Bookworm 1.24, Trixie
2.2); a --system-site-packages venv with a numpy of its own shadows it: numpy 2 over 1.24 breaks their import,
and any second numpy means they run on one they were not built or tested with. The stand-in here is apt's
python3-opencv, a C extension compiled against the same numpy: it must still import and work inside the
deployed venv, on apt's numpy, while edgelite runs from that venv (the service the `deployed` fixture started).
"""

from __future__ import annotations

import json
import shlex
import subprocess
import sys

import pytest

from .vmkit import DIR, PI_OS, RELEASES

pytestmark = [pytest.mark.vm, pytest.mark.timeout(1800)]

APT_CV2 = """
import glob, importlib.machinery, importlib.util, json, numpy, platform
path = glob.glob('/usr/lib/python3/dist-packages/cv2*.so')[0]   # apt's python3-opencv (not the venv's)
spec = importlib.util.spec_from_file_location('cv2', path, loader=importlib.machinery.ExtensionFileLoader('cv2', path))
cv2 = importlib.util.module_from_spec(spec); spec.loader.exec_module(cv2)
grey = cv2.cvtColor(numpy.full((4, 4, 3), 200, numpy.uint8), cv2.COLOR_BGR2GRAY)
print(json.dumps({"numpy": numpy.__version__, "numpy_file": numpy.__file__, "apt_cv2": cv2.__version__,
                  "grey": int(grey[0, 0]), "python": platform.python_version()}))
"""
# the distributions installed in the venv itself (not the system's); the venv has no pip (uv installed it)
OWN = ("import importlib.metadata as md, json, sysconfig\n"
       "print(json.dumps(sorted(d.metadata['Name'].lower() for d in md.distributions(path=[sysconfig.get_path('purelib')]))))")


def venv_python(vm) -> str:
    rel = json.loads(vm.ssh(f"cat {DIR}/current/release.json").stdout)
    return f"{DIR}/venvs/{rel['venv']}/bin/python"


def test_apt_numpy_modules_still_import_in_the_deployed_venv(vm, deployed):
    system = json.loads(vm.ssh("python3 -c 'import json, numpy; print(json.dumps(numpy.__version__))'").stdout)
    assert system.startswith(RELEASES[PI_OS]["numpy"] + "."), system
    assert f"keeping the device's system numpy {system}" in deployed, deployed[-3000:]
    py = venv_python(vm)
    r = vm.ssh(f"{py} -c {shlex.quote(APT_CV2)}", check=False)
    assert r.returncode == 0, r.stderr[-2000:]  # e.g. "numpy.dtype size changed" with numpy 2 over 1.24
    got = json.loads(r.stdout.strip().splitlines()[-1])
    assert got["python"].startswith(RELEASES[PI_OS]["python"] + "."), got  # the venv runs on the OS's Python
    assert got["numpy"] == system and got["numpy_file"].startswith("/usr/lib/python3/dist-packages/"), got
    assert got["grey"] == 200 and got["apt_cv2"].startswith("4."), got
    own = json.loads(vm.ssh(f"{py} -c {shlex.quote(OWN)}").stdout)
    assert "numpy" not in own and {"edgelite", "ai-edge-litert", "opencv-python-headless"} <= set(own), own
    # and edgelite runs from that venv: the service is classifying camera frames
    assert vm.frames() > 0


@pytest.mark.skipif(PI_OS != "bookworm", reason="only Bookworm's apt numpy (1.x) has an incompatible numpy 2 "
                    "to shadow it; on Trixie any venv numpy fails the numpy_file check above")
def test_a_venv_numpy_2_would_break_bookworms_apt_modules(vm, deployed, tmp_path):
    """The control: what the check above catches. A scratch venv with numpy 2 of its own breaks apt's cv2."""
    cmd = [sys.executable, "-m", "pip", "download", "-q", "--no-deps", "--only-binary=:all:", "-d", str(tmp_path),
           "--platform", "manylinux_2_27_aarch64", "--platform", "manylinux2014_aarch64", "--python-version", "3.11",
           "numpy==2.4.6"]
    subprocess.run(cmd, check=True, capture_output=True, timeout=600)
    whl = next(tmp_path.glob("numpy-*.whl"))
    scp = ["scp", "-P", str(vm.port), "-i", str(vm.key), "-o", "BatchMode=yes", "-o", "IdentitiesOnly=yes",
           "-o", f"UserKnownHostsFile={vm.known_hosts}", "-o", "StrictHostKeyChecking=yes", str(whl), "pi@127.0.0.1:/tmp/"]
    subprocess.run(scp, check=True, capture_output=True, timeout=600)
    vm.ssh(f"rm -rf /tmp/shadow && python3 -m venv --system-site-packages --without-pip /tmp/shadow && "
           f"python3 -c 'import zipfile; zipfile.ZipFile(\"/tmp/{whl.name}\").extractall(\"/tmp/shadow/lib/python3.11/site-packages\")'",
           timeout=600)
    r = vm.ssh(f"/tmp/shadow/bin/python -c {shlex.quote(APT_CV2)}", check=False, timeout=600)
    vm.ssh("rm -rf /tmp/shadow /tmp/numpy-*.whl", check=False)
    assert r.returncode != 0 and "numpy" in r.stderr, (r.stdout[-500:], r.stderr[-1500:])
