"""The soak of issue #23 on the emulated Pi: `edgelite run` as the deployed systemd service for an hour on vivid's
V4L2 camera, its preview stream being read the whole time and every 10th result published to MQTT; is anything
growing? Samples every --every seconds (inside the VM, so SSH hiccups cannot bias them): the service's RSS and
open files, frames and FPS from /healthz; on the host, the MQTT messages that arrived.

    .venv/bin/python benchmarks/soak_vm.py --minutes 60      # ~70 min: boot, deploy, the soak

Writes benchmarks/results/soak.{json,md,png}. Verdict (issue #23): RSS and open files after the soak within 5 %
of their value after the warm-up (--warmup minutes), and the FPS of the last ten minutes at least 0.95 of the
first ten after the warm-up. PI_OS=bookworm for the Pi 4 image (default trixie, a Pi 5's Cortex-A76).
"""

from __future__ import annotations

import argparse
import json
import os
import shlex
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from tests.device.mqttkit import PASSWORD, Broker, Subscriber  # noqa: E402
from tests.vm.vmkit import HEALTH, PI_CPU, PI_OS, VM, env, free_port, image_ready  # noqa: E402

RESULTS = ROOT / "benchmarks" / "results"
PROBE = "/tmp/edgelite-soak.jsonl"

# runs in the VM as root (sudo): reads /stream.mjpg all along, samples the service every EVERY s for SECONDS
GUEST = r"""
import json, os, sys, threading, time, urllib.request
seconds, every, out, health = float(sys.argv[1]), float(sys.argv[2]), sys.argv[3], sys.argv[4]
stream = {"bytes": 0, "reconnects": 0}
def read_stream():
    while True:
        try:
            with urllib.request.urlopen(f"http://{health}/stream.mjpg", timeout=30) as r:
                while True:
                    b = r.read(65536)
                    if not b:
                        break
                    stream["bytes"] += len(b)
        except OSError:
            pass
        stream["reconnects"] += 1
        time.sleep(1)
threading.Thread(target=read_stream, daemon=True).start()
def main_pid():
    out = os.popen("systemctl show edgelite.service -p MainPID,NRestarts").read()
    d = dict(ln.split("=", 1) for ln in out.split() if "=" in ln)
    return int(d.get("MainPID") or 0), int(d.get("NRestarts") or 0)
t0 = time.monotonic()
with open(out, "w") as f:
    while time.monotonic() - t0 < seconds:
        pid, restarts = main_pid()
        row = {"t": round(time.monotonic() - t0, 1), "pid": pid, "restarts": restarts, "stream_bytes": stream["bytes"],
               "stream_reconnects": stream["reconnects"]}
        try:
            st = dict(ln.split(":", 1) for ln in open(f"/proc/{pid}/status") if ":" in ln)
            row["rss_kb"] = int(st["VmRSS"].split()[0])
            row["threads"] = int(st["Threads"])
            row["fds"] = len(os.listdir(f"/proc/{pid}/fd"))
        except (OSError, KeyError, ValueError):
            row["rss_kb"] = None
        try:
            h = json.loads(urllib.request.urlopen(f"http://{health}/healthz", timeout=10).read())
            row.update(frames=h.get("frames"), fps=h.get("fps"), status=h.get("status"))
        except (OSError, ValueError):
            row["status"] = "no answer"
        f.write(json.dumps(row) + "\n")
        f.flush()
        time.sleep(max(0.0, every - (time.monotonic() - t0) % every))
"""


def deploy(vm: VM, tmp: Path, broker_port: int) -> None:
    from edgelite.deploy.package import build_wheel

    tiny = tmp / "tiny"
    subprocess.run([sys.executable, str(ROOT / "tests" / "deploy" / "bundlekit.py"), str(tiny)], check=True, cwd=ROOT,
                   env=env(), capture_output=True, timeout=600)
    e = env() | {"EDGELITE_MQTT_PASSWORD": PASSWORD}
    cmd = [sys.executable, "-m", "edgelite", "deploy", str(tiny), "--offline", "--source", "/dev/video0",
           "--wheel", str(build_wheel()), "--health-timeout", "300", "--print-every", "0",
           "--run-args", "--mqtt mqtt://cam@10.0.2.100:1883/edgelite/soak --mqtt-every 10", *vm.conn()]
    r = subprocess.run(cmd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, timeout=1800, cwd=ROOT, env=e)
    if r.returncode != 0:
        raise SystemExit(f"deploy failed (exit {r.returncode}):\n{r.stdout[-3000:]}")


def window(rows: list[dict], t0: float, t1: float, key: str) -> float | None:
    vals = [r[key] for r in rows if t0 <= r["t"] < t1 and r.get(key) is not None]
    return statistics.median(vals) if vals else None


def fps_between(rows: list[dict], t0: float, t1: float) -> float | None:
    """Frames per second from the /healthz frame counter over [t0, t1) (robust to a noisy instant fps)."""
    inside = [r for r in rows if t0 <= r["t"] < t1 and r.get("frames") is not None]
    if len(inside) < 2:
        return None
    return (inside[-1]["frames"] - inside[0]["frames"]) / (inside[-1]["t"] - inside[0]["t"])


def verdict(rows: list[dict], minutes: float, warmup: float, messages: list[float], span: float = 10.0) -> dict:
    end, w = minutes * 60, warmup * 60
    first = (w, w + span * 60)
    last = (end - span * 60, end + 1)
    out = {"minutes": minutes, "warmup_min": warmup, "window_min": span, "samples": len(rows),
           "restarts": max((r.get("restarts") or 0) for r in rows) if rows else None,
           "unanswered_healthz": sum(r.get("status") != "ok" for r in rows),
           "stream_mb": round(rows[-1]["stream_bytes"] / 1e6, 1) if rows else None,
           "stream_reconnects": rows[-1]["stream_reconnects"] if rows else None,
           "mqtt_messages": len(messages)}
    for key in ("rss_kb", "fds", "threads"):
        a, b = window(rows, *first, key), window(rows, *last, key)
        out[key] = {"after_warmup": a, "at_end": b, "growth": round(b / a - 1, 4) if a and b else None}
    fa, fb = fps_between(rows, *first), fps_between(rows, *last)
    out["fps"] = {"first": round(fa, 3) if fa else None, "last": round(fb, 3) if fb else None,
                  "ratio": round(fb / fa, 3) if fa and fb else None}
    ma = sum(first[0] <= t < first[1] for t in messages)
    mb = sum(last[0] <= t < last[1] for t in messages)
    out["mqtt_per_window"] = {"first": ma, "last": mb}
    out["pass"] = bool(out["rss_kb"]["growth"] is not None and out["rss_kb"]["growth"] <= 0.05
                       and out["fds"]["growth"] is not None and out["fds"]["growth"] <= 0.05
                       and out["fps"]["ratio"] is not None and out["fps"]["ratio"] >= 0.95
                       and out["restarts"] == 0 and mb > 0)
    return out


def plot(rows: list[dict], messages: list[float], path: Path, title: str) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    t = [r["t"] / 60 for r in rows]
    fig, ax = plt.subplots(4, 1, figsize=(9, 9), sharex=True)
    ax[0].plot(t, [(r.get("rss_kb") or 0) / 1024 for r in rows])
    ax[0].set_ylabel("RSS (MiB)")
    ax[1].plot(t, [r.get("fds") or 0 for r in rows], label="open files")
    ax[1].plot(t, [r.get("threads") or 0 for r in rows], label="threads")
    ax[1].legend(loc="lower right")
    fps = [(b["frames"] - a["frames"]) / (b["t"] - a["t"]) if a.get("frames") is not None and b.get("frames") is not None
           else 0 for a, b in zip(rows, rows[1:], strict=False)]
    ax[2].plot(t[1:], fps)
    ax[2].set_ylabel("FPS")
    per_min: dict[int, int] = {}
    for m in messages:
        per_min[int(m // 60)] = per_min.get(int(m // 60), 0) + 1
    ax[3].bar(list(per_min), list(per_min.values()), width=0.9)
    ax[3].set_ylabel("MQTT msgs / min")
    ax[3].set_xlabel("minutes")
    fig.suptitle(title, fontsize=10)
    fig.tight_layout()
    fig.savefig(path, dpi=90)


def render(result: dict) -> str:
    v = result["verdict"]
    lines = [f"# Soak: `edgelite run` as the deployed service on the emulated Pi, {v['minutes']:g} minutes (issue #23)",
             "",
             f"{result['machine']}. The service on vivid's V4L2 camera (`/dev/video0`), its preview stream read all "
             "along from inside the VM, every 10th result published to a mosquitto on the host (`--mqtt-every 10`, "
             "QoS 1, through qemu's guestfwd); samples every "
             f"{result['every']:g} s inside the VM. Command: `{result['command']}`. Host load average at start "
             f"{result['load_start']}, at the end {result['load_end']} (a shared 2-core machine).",
             "", "![soak](soak.png)", "",
             "| what | after the warm-up | at the end | change |", "|---|---:|---:|---:|"]
    for key, name in (("rss_kb", "RSS (KiB, median of the window)"), ("fds", "open files"), ("threads", "threads")):
        d = v[key]
        change = "" if d["growth"] is None else f"{d['growth'] * 100:+.1f} %"
        lines.append(f"| {name} | {d['after_warmup']} | {d['at_end']} | {change} |")
    f = v["fps"]
    lines.append(f"| FPS (frame counter, {v['window_min']:g}-minute windows) | {f['first']} | {f['last']} | "
                 f"x{f['ratio']} |")
    m = v["mqtt_per_window"]
    lines.append(f"| MQTT messages per window (host broker) | {m['first']} | {m['last']} | |")
    lines += ["", f"Restarts {v['restarts']}, /healthz not ok in {v['unanswered_healthz']} of {v['samples']} samples, "
              f"{v['stream_mb']} MB of MJPEG read ({v['stream_reconnects']} stream reconnects), "
              f"{v['mqtt_messages']} MQTT messages in all. Windows: the first {v['window_min']:g} minutes after a "
              f"{v['warmup_min']:g}-minute warm-up against the last {v['window_min']:g}. Verdict (growth <= 5 %, FPS ratio >= 0.95, "
              f"no restart, MQTT still arriving): **{'pass' if v['pass'] else 'FAIL'}**.", ""]
    return "\n".join(lines)


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--minutes", type=float, default=60.0)
    ap.add_argument("--warmup", type=float, default=5.0, help="minutes before the first window")
    ap.add_argument("--every", type=float, default=15.0, help="seconds between samples")
    ap.add_argument("--window", type=float, default=10.0, help="minutes of each compared window (default 10)")
    ap.add_argument("--out", default=str(RESULTS / "soak"), help="stem of the .json/.md/.png written")
    a = ap.parse_args()
    if why := image_ready():
        raise SystemExit(why)
    with tempfile.TemporaryDirectory(prefix="edgelite-soak-") as tmp:
        broker = Broker(Path(tmp) / "broker", free_port()).start()
        sub = Subscriber(broker.port, "edgelite/soak/state")
        vm = VM(free_port(), free_port(), broker=broker.port)
        load_start = [round(x, 2) for x in os.getloadavg()]
        vm.start()
        try:
            deploy(vm, Path(tmp), broker.port)
            seconds = a.minutes * 60
            vm.ssh(f"sudo -n sh -c {shlex.quote(f'nohup python3 -c {shlex.quote(GUEST)} {seconds} {a.every} {PROBE} {HEALTH} >/dev/null 2>&1 &')}")
            t0 = time.monotonic()
            seen, arrivals = 0, []
            while time.monotonic() - t0 < seconds + 2 * a.every:
                time.sleep(5)
                n = len(sub.messages)
                arrivals += [time.monotonic() - t0] * (n - seen)
                seen = n
                print(f"\r{(time.monotonic() - t0) / 60:5.1f} / {a.minutes:g} min, {seen} MQTT messages", end="",
                      file=sys.stderr, flush=True)
            print(file=sys.stderr)
            rows = [json.loads(ln) for ln in vm.ssh(f"cat {PROBE}").stdout.splitlines() if ln.startswith("{")]
            # the raw samples first (removed once the .json holds them): a bug below must not cost an hour's run
            Path(a.out).with_suffix(".raw.json").write_text(json.dumps({"rows": rows, "mqtt_arrivals": arrivals}))
            machine = vm.ssh("uname -m; nproc; . /etc/os-release; echo $PRETTY_NAME").stdout.split("\n")
        finally:
            vm.stop()
            sub.close()
            broker.stop()
    result = {"machine": f"{machine[2]} ({PI_OS}), {machine[0]}, {machine[1]} cores, qemu -cpu {PI_CPU}",
              "every": a.every, "load_start": load_start, "load_end": [round(x, 2) for x in os.getloadavg()],
              "command": "PYTHONPATH=. .venv/bin/python benchmarks/soak_vm.py " + " ".join(sys.argv[1:]),
              "rows": rows, "mqtt_arrivals": [round(t, 1) for t in arrivals],
              "verdict": verdict(rows, a.minutes, a.warmup, arrivals, a.window)}
    out = Path(a.out)
    out.with_suffix(".json").write_text(json.dumps(result, indent=1) + "\n")
    out.with_suffix(".raw.json").unlink(missing_ok=True)  # all of it is in the .json now
    plot(rows, arrivals, out.with_suffix(".png"), f"soak on the emulated Pi ({PI_OS}, {PI_CPU}), {a.minutes:g} min")
    out.with_suffix(".md").write_text(render(result))
    print(json.dumps(result["verdict"], indent=1))
    return 0 if result["verdict"]["pass"] else 1


if __name__ == "__main__":
    raise SystemExit(main())
