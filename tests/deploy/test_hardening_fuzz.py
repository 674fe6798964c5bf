"""Issue #22, kept closed: seeded random hostile input on each surface a device (or a camera URL) reaches.

- pull-frames tar streams (links, hard links, devices, fifos, setuid/0777 modes, `..`, absolute names, and
  one of 1,500 entries): only plain 0600 files in 0700 folders land, all inside the folder; an endless
  stream stops at the pull's count or byte cap, a file over 50 MB is skipped;
- camera URLs with odd userinfo (`@`, `:`, `%`) and secret query keys (any case, percent-encoded): the
  password never survives `redact_url`;
- device strings with ESC / CSI / OSC / C1 sequences: `printable` leaves no control character but tab and
  newline;
- agent requests with hostile job names and fields of every JSON type: a reply, never an exception, never
  a file outside the folder;
- the release's env file: any one-line value comes back byte for byte through sh.

Fast (a few seconds in all): each case is small, the seeds fixed.
"""

from __future__ import annotations

import io
import json
import os
import random
import stat
import string
import subprocess
import tarfile

import pytest

SEED = 22


def _tar(path, members) -> None:
    with tarfile.open(path, "w") as tar:
        for name, kind, mode, data, link in members:
            info = tarfile.TarInfo(name)
            info.type, info.mode, info.linkname = kind, mode, link
            info.size = len(data) if kind == tarfile.REGTYPE else 0
            if kind in (tarfile.CHRTYPE, tarfile.BLKTYPE):
                info.devmajor, info.devminor = 1, 3
            tar.addfile(info, io.BytesIO(data) if kind == tarfile.REGTYPE else None)


def _hostile_members(rng: random.Random, n: int) -> list:
    parts = ["a", "b", "frames", "..", ".", ".hidden", "x" * 200, "ünï", "-rf", "a b", "*", ""]
    kinds = [tarfile.REGTYPE] * 4 + [tarfile.DIRTYPE, tarfile.SYMTYPE, tarfile.LNKTYPE, tarfile.CHRTYPE,
                                     tarfile.BLKTYPE, tarfile.FIFOTYPE]
    out = []
    for _ in range(n):
        name = "/".join(rng.choice(parts) for _ in range(rng.randint(1, 4))) or "a"
        if rng.random() < 0.15:
            name = "/" + name.lstrip("/")
        kind = rng.choice(kinds)
        mode = rng.choice([0o644, 0o777, 0o4755, 0o6777, 0o1777, 0o000])
        link = rng.choice(["/etc/passwd", "../../outside", "a", "/tmp", "frames/../../x"])
        out.append((name, kind, mode, rng.randbytes(rng.randint(0, 64)), link))
    return out


def _pull(tmp_path, monkeypatch, archive, dest):
    from edgelite.remote.ssh import Remote
    from edgelite.remote.target import parse_target

    remote = Remote(parse_target("pi@127.0.0.1"))
    monkeypatch.setattr(remote, "ssh_argv", lambda command: ["cat", str(archive)])  # the device's tar stream
    return remote.get("/home/pi/frames", dest, transfer="scp")


def _tree(root) -> dict[str, int]:
    return {os.path.join(d, n): os.lstat(os.path.join(d, n)).st_mode
            for d, dirs, files in os.walk(root) for n in dirs + files}


def _check_pulled(dest, names) -> None:
    found = _tree(dest)
    files = {os.path.relpath(p, dest) for p, m in found.items() if not stat.S_ISDIR(m)}
    assert files == {os.path.normpath(n) for n in names}
    for p, m in found.items():
        assert stat.S_ISREG(m) or stat.S_ISDIR(m), p  # no link, device or fifo
        assert stat.S_IMODE(m) == (0o700 if stat.S_ISDIR(m) else 0o600), (p, oct(m))


@pytest.mark.parametrize("case", range(12))
def test_hostile_pull_frames_archives_land_only_plain_private_files_inside(tmp_path, monkeypatch, case):
    rng = random.Random(SEED * 100 + case)
    archive = tmp_path / "device.tar"
    _tar(archive, _hostile_members(rng, 40))
    sandbox = tmp_path / "ws"
    dest = sandbox / "in" / "pulled"
    dest.mkdir(parents=True)
    (sandbox / "keep.txt").write_text("mine")
    before = {p: m for p, m in _tree(sandbox).items() if not p.startswith(str(dest))}
    names = _pull(tmp_path, monkeypatch, archive, dest)
    _check_pulled(dest, names)
    assert {p: m for p, m in _tree(sandbox).items() if not p.startswith(str(dest))} == before  # nothing beside
    assert not os.path.lexists("/tmp/a") or not os.path.islink("/tmp/a")


def test_an_archive_of_many_entries_is_pulled_plain(tmp_path, monkeypatch):
    archive = tmp_path / "many.tar"
    _tar(archive, [(f"./f{i:05d}.jpg", tarfile.REGTYPE, 0o6777, b"x", "") for i in range(1500)])
    dest = tmp_path / "pulled"
    names = _pull(tmp_path, monkeypatch, archive, dest)
    assert len(names) == 1500
    _check_pulled(dest, names)


ENDLESS_DEVICE = """
import io, sys, tarfile
with tarfile.open(fileobj=sys.stdout.buffer, mode="w|") as tar:
    i = 0
    while True:  # a compromised device that never stops sending frames
        info = tarfile.TarInfo(f"./f{i:07d}.jpg")
        info.size = 100_000
        tar.addfile(info, io.BytesIO(bytes(info.size)))
        i += 1
"""


@pytest.mark.timeout(60)
@pytest.mark.parametrize("caps, kept", [(dict(max_files=50), 50), (dict(max_mb=1), 10)])
def test_a_device_that_never_stops_sending_is_cut_off_at_the_pull_caps(tmp_path, monkeypatch, caps, kept):
    """Issue #22, hole 1: sizes and counts capped. Without caps this pull fills the disk and never ends."""
    import sys

    from edgelite.remote.pulled import Caps
    from edgelite.remote.ssh import Remote
    from edgelite.remote.target import parse_target

    remote = Remote(parse_target("pi@127.0.0.1"))
    monkeypatch.setattr(remote, "ssh_argv", lambda command: [sys.executable, "-c", ENDLESS_DEVICE])
    warnings: list[str] = []
    dest = tmp_path / "pulled"
    names = remote.get("/home/pi/frames", dest, transfer="scp", caps=Caps(**caps), warn=warnings.append)
    assert len(names) == kept
    _check_pulled(dest, names)
    assert len(warnings) == 1 and "run the same pull again for the rest" in warnings[0], warnings
    assert f"at {kept} files" in warnings[0]


def test_a_file_too_large_to_be_a_frame_is_never_written(tmp_path, monkeypatch):
    archive = tmp_path / "big.tar"
    with tarfile.open(archive, "w") as tar:
        for name, size in [("./ok.jpg", 1000), ("./huge.jpg", 51 * 2**20), ("./after.jpg", 10)]:
            info = tarfile.TarInfo(name)
            info.size = size
            tar.addfile(info, io.BytesIO(bytes(size)))
    dest = tmp_path / "pulled"
    names = _pull(tmp_path, monkeypatch, archive, dest)
    assert sorted(names) == ["after.jpg", "ok.jpg"]  # the stream goes on past it
    _check_pulled(dest, names)


SCHEMES = ["rtsp", "RTSP", "rtsps", "http", "https", "Rtmp"]
SAFE = string.ascii_letters + string.digits + "!$&'()*+,;=:@%-._~"  # userinfo may hold these (no / ? #)


def test_camera_passwords_never_survive_redaction():
    from edgelite.device.sources.rtsp import SECRET_KEYS, redact_url

    rng = random.Random(SEED)
    keys = sorted(SECRET_KEYS)
    for _ in range(2000):
        secret = "S3" + "".join(rng.choice(SAFE) for _ in range(rng.randint(4, 24))).replace("&", "").replace("=", "")
        user = "".join(rng.choice(string.ascii_letters + "%.@") for _ in range(rng.randint(0, 8)))
        host = rng.choice(["cam", "10.0.0.7:554", "[fe80::1]:8554", "cam.local"])
        path = rng.choice(["", "/", "/s/1", "/live;x=1"])
        url = f"{rng.choice(SCHEMES)}://{user}:{secret}@{host}{path}"
        assert secret not in redact_url(url), url
        key = rng.choice(keys)
        key = "".join(c.upper() if rng.random() < 0.5 else c for c in key)
        if rng.random() < 0.3:
            key = "".join(f"%{ord(c):02X}" if rng.random() < 0.4 else c for c in key)
        value = "V4" + "".join(rng.choice(string.ascii_letters + string.digits + "%@:/+") for _ in range(12))
        query = [f"channel={rng.randint(1, 9)}", f"{key}={value}", "user=admin"]
        rng.shuffle(query)
        url = f"{rng.choice(SCHEMES)}://{host}{path or '/'}?{'&'.join(query)}" + rng.choice(["", "#frag"])
        assert value not in redact_url(url), url


ESCAPES = ["\x1b[2J", "\x1b]0;owned\x07", "\x1b]8;;http://x\x1b\\", "\x9b31m", "\x1bP+q\x1b\\", "\r", "\b" * 5,
           "\x00", "\x7f", "\x85", "\u2028", "\x1b[?1049h", "\x1bc"]


def test_device_strings_reach_the_terminal_without_control_characters():
    from edgelite.remote.agent import printable

    rng = random.Random(SEED)
    bad = {chr(c) for c in [*range(0x00, 0x09), *range(0x0b, 0x20), 0x7f, *range(0x80, 0xa0)]}
    for _ in range(500):
        text = "".join(rng.choice(ESCAPES + ["ok ", "release ", "\t", "\n", "é"]) for _ in range(rng.randint(1, 12)))
        reply = {"release": text, "lines": [text, {"nested": text}], text: [text]}
        out = json.dumps(printable(reply), ensure_ascii=False)
        assert not bad & set(out), repr(out)


def _agent_requests(rng: random.Random):
    values = [None, 0, -1, 2**63, 1.5, float("inf"), True, "", " ", "../../outside", "/etc/passwd", "..", ".",
              "a/../../b", "job\x00x", "x" * 5000, "\x1b[2J", [], ["a"], {}, {"a": 1}, "~root", "$(id)", "`id`"]
    commands = ["wait", "logs", "prepare-bundle", "accept-bundle", "release", "previous", "status", "facts"]
    fields = ["job", "offset", "timeout", "lines", "bundle", "env", "source", "http", "run_args", "token",
              "format", "print_every", "meta"]
    for _ in range(150):
        req = {"command": rng.choice(commands)}
        for f in rng.sample(fields, rng.randint(1, 6)):
            req[f] = rng.choice(values)
        if req.get("timeout") not in (None, 0):
            req["timeout"] = 0  # `wait` blocks up to its timeout: keep the suite fast
        yield req


def test_hostile_agent_requests_get_a_reply_and_touch_nothing_outside(tmp_path):
    from edgelite.deploy.agent.__main__ import handle

    root = tmp_path / "dev"
    outside = tmp_path / "outside"
    outside.write_text("secret")
    rng = random.Random(SEED)
    for req in _agent_requests(rng):
        req["dir"] = str(root)
        reply = handle(req)
        assert isinstance(reply, dict) and isinstance(reply.get("ok"), bool), (req, reply)
        json.dumps(reply)  # what the workstation receives is JSON
        if reply["ok"] and req["command"] == "wait":
            raise AssertionError(f"a wait for a job that never ran answered ok: {req} -> {reply}")
        assert "secret" not in json.dumps(reply), (req, reply)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["dev", "outside"]  # nothing made beside the folder
    assert outside.read_text() == "secret"


def test_env_file_values_come_back_byte_for_byte_through_sh(tmp_path):
    from edgelite.deploy.agent.release import env_file_text

    rng = random.Random(SEED)
    alphabet = string.printable.replace("\n", "").replace("\r", "").replace("\x0b", "").replace("\x0c", "") + "é€"
    values = ["".join(rng.choice(alphabet) for _ in range(rng.randint(0, 40))) for _ in range(40)]
    values += ['"', "\\", "$HOME", "`id`", "$(id)", "'", "\\\"$`", "a\\", "${IFS}", "*", "~"]
    env = tmp_path / "env"
    env.write_text("".join(env_file_text({f"V{i}": v}) for i, v in enumerate(values)))
    script = 'set -a; . "$1"; set +a; i=0; while [ $i -lt $2 ]; do eval "printf \'%s\\0\' \\"\\$V$i\\""; i=$((i+1)); done'
    out = subprocess.run(["sh", "-c", script, "sh", str(env), str(len(values))], capture_output=True, timeout=30,
                         env={"PATH": os.environ["PATH"], "HOME": "/nonexistent"})
    assert out.returncode == 0, out.stderr
    assert out.stdout.decode().split("\0")[:-1] == values
