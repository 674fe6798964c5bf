"""Bookworm's numpy beside the deployed venv (issue 12, item 7).

On Raspberry Pi OS, picamera2 and simplejpeg come from apt, built against apt's numpy 1.24; a
--system-site-packages venv that pip-installs numpy 2 breaks their import. Here the stand-in is apt's
python3-opencv, compiled against the same numpy: it must still import and work inside the deployed venv,
while edgelite runs from that venv (the service the `deployed` fixture started).
"""

from __future__ import annotations

import json
import shlex

import pytest

from .vmkit import DIR

pytestmark = [pytest.mark.vm, pytest.mark.timeout(1800)]

APT_CV2 = """
import glob, importlib.machinery, importlib.util, json, numpy
path = glob.glob('/usr/lib/python3/dist-packages/cv2*.so')[0]   # apt's python3-opencv (not the venv's)
spec = importlib.util.spec_from_file_location('cv2', path, loader=importlib.machinery.ExtensionFileLoader('cv2', path))
cv2 = importlib.util.module_from_spec(spec); spec.loader.exec_module(cv2)
grey = cv2.cvtColor(numpy.full((4, 4, 3), 200, numpy.uint8), cv2.COLOR_BGR2GRAY)
print(json.dumps({"numpy": numpy.__version__, "numpy_file": numpy.__file__, "apt_cv2": cv2.__version__,
                  "grey": int(grey[0, 0])}))
"""


def test_apt_numpy_modules_still_import_in_the_deployed_venv(vm, deployed):
    assert "keeping the device's system numpy 1.24" in deployed, deployed[-3000:]
    rel = json.loads(vm.ssh(f"cat {DIR}/current/release.json").stdout)
    py = f"{DIR}/venvs/{rel['venv']}/bin/python"
    system = json.loads(vm.ssh("python3 -c 'import json, numpy; print(json.dumps(numpy.__version__))'").stdout)
    r = vm.ssh(f"{py} -c {shlex.quote(APT_CV2)}", check=False)
    assert r.returncode == 0, r.stderr[-2000:]  # e.g. "numpy.dtype size changed" with numpy 2 in the venv
    got = json.loads(r.stdout.strip().splitlines()[-1])
    assert got["numpy"] == system and got["numpy_file"].startswith("/usr/lib/python3/dist-packages/"), got
    assert got["grey"] == 200 and got["apt_cv2"].startswith("4."), got
    listed = vm.ssh(f"{py} -m pip list --path $({py} -c 'import sysconfig; print(sysconfig.get_path(\"purelib\"))')"
                    " --format json --disable-pip-version-check").stdout
    assert "numpy" not in {p["name"].lower() for p in json.loads(listed)}  # no numpy of its own
    # and edgelite runs from that venv: the service is classifying camera frames
    assert vm.frames() > 0
