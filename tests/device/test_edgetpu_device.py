"""`--edgetpu [DEVICE]`: one of several Edge TPUs (Coral's `model@usb:0`), checked, and handed to libedgetpu.

No Edge TPU here: a real shared library built from C in the test exports the TFLite external-delegate entry
points and declines, as libedgetpu does when the device asked for is not plugged in, reporting the options
LiteRT's `load_delegate` passed it. The hardware path is `test_run_hardware.py` (marker `edgetpu`)."""

from __future__ import annotations

import shutil
import subprocess

import pytest

from edgelite.device import runtime
from edgelite.device.errors import ModelLoadError, RunError
from edgelite.device.options import RunOptions
from tests.device import devicekit
from tests.optionskit import subparser

DECLINING_DELEGATE = r"""
#include <stdio.h>
#include <stddef.h>
void *tflite_plugin_create_delegate(char **keys, char **values, size_t n, void (*report)(const char *)) {
    char msg[512]; size_t used = 0;
    used += snprintf(msg + used, sizeof msg - used, "no Edge TPU found; options:");
    for (size_t i = 0; i < n && used < sizeof msg; i++)
        used += snprintf(msg + used, sizeof msg - used, " %s=%s", keys[i], values[i]);
    report(msg);
    return NULL;
}
void tflite_plugin_destroy_delegate(void *delegate) { (void)delegate; }
"""


@pytest.fixture(scope="module")
def declining_delegate(tmp_path_factory) -> str:
    cc = shutil.which("cc") or shutil.which("gcc")
    if cc is None:
        pytest.skip("no C compiler to build the stand-in delegate library")
    d = tmp_path_factory.mktemp("delegate")
    (d / "declining.c").write_text(DECLINING_DELEGATE)
    subprocess.run([cc, "-shared", "-fPIC", "-o", str(d / "libdeclining.so"), str(d / "declining.c")], check=True)
    return str(d / "libdeclining.so")


def _opts(*argv: str) -> RunOptions:
    from edgelite.device.cli import options_from_args

    return options_from_args(subparser("run").parse_args(["bundle", *argv]))


def test_edgetpu_flag_takes_an_optional_device():
    assert _opts().edgetpu_device is None  # no flag: the CPU (or the auto choice)
    assert _opts("--edgetpu").edgetpu_device == ""  # alone: the first Edge TPU, as before
    assert _opts("--edgetpu", "--top-k", "2").edgetpu_device == ""  # a following flag is not taken as the device
    for spec in ("usb:0", "pci:1", "usb", "pci", ":2"):
        assert _opts("--edgetpu", spec).edgetpu_device == spec
        assert _opts(f"--edgetpu={spec}").edgetpu_device == spec
    assert RunOptions(edgetpu=True).edgetpu_device == "" and RunOptions(edgetpu=False).edgetpu_device is None


@pytest.mark.parametrize("spec", ["usb0", "USB:0", "usb:", "pcie:0", "usb:-1", "bundles/demo", "tpu"])
def test_a_bad_device_is_a_one_line_error(spec):
    with pytest.raises(RunError) as e:
        RunOptions(edgetpu=spec).validate()
    msg = str(e.value)
    assert "\n" not in msg and repr(spec) in msg and "usb:N" in msg and "pci:N" in msg


def test_a_bad_device_from_the_cli_exits_2_before_loading(tiny, heldout_video):
    p = devicekit.run_cmd(tiny["bundle"], "--edgetpu", "usb-0", "--source", heldout_video, "--max-frames", "1")
    assert p.returncode == 2 and "Traceback" not in p.stderr
    err = [s for s in p.stderr.splitlines() if s.startswith("edgelite run: error:")]
    assert len(err) == 1 and "'usb-0' is not an Edge TPU device" in err[0], p.stderr


@pytest.mark.parametrize("device, options", [("usb:1", " device=usb:1"), ("pci", " device=pci"), ("", "")])
def test_the_device_reaches_the_delegate_as_its_device_option(declining_delegate, device, options):
    import ai_edge_litert.interpreter as litert

    with pytest.raises(ModelLoadError) as e:
        runtime.load_edgetpu_delegate(litert, lib=declining_delegate, device=device)
    msg = str(e.value)
    assert "\n" not in msg and "libedgetpu1-std" in msg
    assert msg.split("(", 1)[1].startswith(f"no Edge TPU found; options:{options})"), msg
    assert (f"for device {device}" in msg) == bool(device)


def test_load_edgetpu_delegate_checks_the_device_itself():
    with pytest.raises(RunError, match="'usb:x' is not an Edge TPU device"):
        runtime.load_edgetpu_delegate(lib="libm.so.6", device="usb:x")
