"""The whole emulated Pi: one arm64 VM per session (PI_OS: trixie, the default, or bookworm) (systemd, vivid's /dev/video0), booted from a
clean copy-on-write overlay of the cached image, and one real deploy to it that the tests then poke at.

Every test here skips, with the reason, when the image is not cached (`make pi-vm` builds it once);
`make test-device` builds it and runs only these. The figures they measure are printed at the end.
"""

from __future__ import annotations

import shutil
import time
from pathlib import Path

import pytest

from tests.deploy.rig import write_broken_copy
from tests.device.mqttkit import MOSQUITTO, PASSWORD, USER, Broker

from .vmkit import BROKER_IN_GUEST, MQTT_PREFIX, PI_CPU, PI_OS, TIMINGS, VM, free_port, image_ready

HERE = Path(__file__).resolve().parent


def pytest_collection_modifyitems(config, items):
    why = image_ready()
    for item in items:  # the tests that boot the VM (they use its fixture); the unit tests here always run
        if HERE in Path(str(item.fspath)).parents and "vm" in getattr(item, "fixturenames", ()):
            item.add_marker(pytest.mark.vm)
            if why:
                item.add_marker(pytest.mark.skip(reason=why))


def pytest_terminal_summary(terminalreporter):
    if TIMINGS:
        terminalreporter.write_sep("-", f"emulated Pi VM ({PI_OS}, {PI_CPU}): measured times")
        for k, v in TIMINGS.items():
            terminalreporter.write_line(f"{k:<40} {v:7.1f} s")


@pytest.fixture(scope="session")
def vm(tmp_path_factory):
    """The booted VM, and (with mosquitto installed) a broker on the host it reaches at BROKER_IN_GUEST."""
    why = image_ready()
    if why:
        pytest.skip(why)
    broker = Broker(tmp_path_factory.mktemp("vm-mosquitto"), free_port()).start() if MOSQUITTO else None
    machine = VM(free_port(), free_port(), broker=broker.port if broker else None)
    try:
        machine.start()
        TIMINGS["boot to SSH (scripts/pi-vm.sh start)"] = machine.boot_seconds
        yield machine
    finally:
        machine.stop()
        if broker:
            broker.stop()


@pytest.fixture(scope="session")
def tiny_bundle(tiny_bundle_built, tmp_path_factory) -> Path:
    """The deploy tests' int8 colour classifier (tests/deploy/bundlekit.py, built once per run)."""
    return Path(shutil.copytree(tiny_bundle_built, tmp_path_factory.mktemp("vm-bundles") / "tiny"))


@pytest.fixture(scope="session")
def broken_bundle(tiny_bundle, tmp_path_factory) -> Path:
    """Manifest-valid (sha256 and all) but its model file is not a model: it cannot run on the device."""
    return write_broken_copy(tiny_bundle, tmp_path_factory.mktemp("vm-bundles") / "broken")


@pytest.fixture(scope="session")
def wheel() -> Path:
    from edgelite.deploy.package import build_wheel

    return build_wheel()


@pytest.fixture(scope="session")
def deployed(vm, tiny_bundle, wheel, tmp_path_factory):
    """`edgelite deploy BUNDLE --offline --source /dev/video0` to the VM: a systemd unit on vivid's camera,
    keeping every frame scored below 1.0 (the session's freshly trained model may be confident on vivid's
    pattern; the sandbox test sees them written into the deploy folder), and publishing to the host's broker
    (MQTT_PREFIX/state every 10 results; the password from --mqtt-password-file) when there is one."""
    mqtt = []
    if vm.broker:
        pw = tmp_path_factory.mktemp("vm-mqtt") / "password"
        pw.write_text(PASSWORD + "\n")
        mqtt = ["--mqtt", f"mqtt://{USER}@{BROKER_IN_GUEST}/{MQTT_PREFIX}", "--mqtt-every", "10"]
    t0 = time.monotonic()
    r = vm.deploy(str(tiny_bundle), "--offline", "--source", "/dev/video0", "--wheel", str(wheel),
                  "--health-timeout", "300", "--print-every", "10", "--save-uncertain",
                  "--run-args", " ".join(["--below 1.0", *mqtt]), *(["--mqtt-password-file", str(pw)] if mqtt else []),
                  "--json")
    took = time.monotonic() - t0
    assert r.returncode == 0, r.stdout[-5000:]
    TIMINGS["deploy (offline, first: venv + wheels)"] = took
    return r.stdout
