"""`edgelite run --mqtt` against a real broker (Debian's mosquitto, started here on 127.0.0.1)."""

from __future__ import annotations

import json
import threading
import time
import urllib.request

import pytest

from edgelite.device import run
from edgelite.device.errors import RunError
from tests.device import devicekit
from tests.device.mqttkit import MOSQUITTO, PASSWORD, Broker, Subscriber

pytest.importorskip("paho.mqtt.client", reason="paho-mqtt is not installed (pip install 'edgelite[mqtt]')")
pytestmark = pytest.mark.skipif(MOSQUITTO is None, reason="mosquitto is not installed (scripts/system-deps.sh)")

PREFIX = "edgelite/test"


@pytest.fixture
def broker(tmp_path, monkeypatch):
    monkeypatch.setenv("EDGELITE_MQTT_PASSWORD", PASSWORD)
    b = Broker(tmp_path / "mosquitto", devicekit.free_port()).start()
    yield b
    b.stop()


def test_results_discovery_and_availability_arrive(broker, bundle_dir, heldout_video):
    sub = Subscriber(broker.port)
    results = []
    summary = run(bundle_dir, source=str(heldout_video), mqtt=broker.url(PREFIX), print_every=0,
                  on_result=lambda r, f: results.append(r))
    assert summary.exit_code == 0 and summary.frames == len(results) > 0
    sub.wait_for(lambda m: m[0] == f"{PREFIX}/availability" and m[1] == "offline")
    sub.close()
    states = [json.loads(p) for t, p, q, _ in sub.messages if t == f"{PREFIX}/state"]
    published = [r for r in results if r.changed or r.frame == 0]  # default: label changes only
    assert [s["frame"] for s in states] == [r.frame for r in published]
    assert [s["label"] for s in states] == [r.label for r in published]
    assert all(q == 1 for t, _, q, _ in sub.messages)  # QoS 1 end to end
    s = states[-1]
    assert set(s) >= {"label", "score", "fps", "top_k", "previous", "timestamp", "model"} and s["model"] == summary.model
    avail = [p for t, p, _, _ in sub.messages if t == f"{PREFIX}/availability"]
    assert avail[0] == "online" and avail[-1] == "offline"

    configs = {t: json.loads(p) for t, p, _, _ in sub.messages if t.startswith("homeassistant/")}
    assert set(configs) == {f"homeassistant/sensor/edgelite_test/{k}/config" for k in ("label", "score", "fps")}
    for key, cfg in ((t.split("/")[-2], c) for t, c in configs.items()):
        assert cfg["state_topic"] == f"{PREFIX}/state" and cfg["availability_topic"] == f"{PREFIX}/availability"
        assert cfg["unique_id"] == f"edgelite_edgelite_test_{key}" and cfg["device"]["manufacturer"] == "edgelite"
        assert cfg["default_entity_id"] == f"sensor.edgelite_edgelite_test_{key}" and "object_id" not in cfg
    assert configs["homeassistant/sensor/edgelite_test/fps/config"]["unit_of_measurement"] == "fps"

    late = Subscriber(broker.port)  # someone who subscribes later gets the retained state, device, availability
    kept = late.retained()
    late.close()
    assert json.loads(kept[f"{PREFIX}/state"])["frame"] == published[-1].frame
    assert kept[f"{PREFIX}/availability"] == "offline" and len([t for t in kept if t.startswith("homeassistant/")]) == 3


def test_every_nth_result_is_published_too(broker, bundle_dir, heldout_video):
    sub = Subscriber(broker.port, f"{PREFIX}/state")
    results = []
    run(bundle_dir, source=str(heldout_video), mqtt=broker.url(PREFIX), mqtt_every=5, mqtt_discovery="",
        print_every=0, on_result=lambda r, f: results.append(r))
    want = [r.frame for r in results if r.changed or r.frame % 5 == 0]
    got = sub.wait_for(lambda m: json.loads(m[1])["frame"] == want[-1])
    assert got, "last state never arrived"
    sub.close()
    assert [json.loads(p)["frame"] for _, p, _, _ in sub.messages] == want


def test_wrong_password_is_a_one_line_error_at_start(broker, bundle_dir, heldout_video):
    env = devicekit.cli_env(EDGELITE_MQTT_PASSWORD="wrong")
    t = time.monotonic()
    p = devicekit.run_cmd(bundle_dir, "--source", heldout_video, "--mqtt", broker.url(PREFIX), env=env)
    assert p.returncode == 2 and time.monotonic() - t < 30
    # LiteRT's own banner and the run's `format auto:` line (which model the trial picked) are not errors
    lines = [ln for ln in p.stderr.splitlines() if not ln.startswith(("INFO: ", "edgelite run: format auto:"))]
    assert len(lines) == 1, p.stderr
    err = lines[0]
    # mosquitto 2 answers "not authorized" to a wrong password, older brokers "bad user name or password"
    assert "the broker refused the login (" in err and "Traceback" not in p.stderr
    assert "EDGELITE_MQTT_PASSWORD" in err and "wrong" not in err and p.stdout == ""


def test_password_in_the_url_and_bad_urls_are_refused(broker, bundle_dir, heldout_video):
    for url, msg in ((f"mqtt://cam:{PASSWORD}@127.0.0.1:{broker.port}/x", "not in the URL"),
                     ("http://127.0.0.1/x", "expected mqtt://"), (f"mqtt://127.0.0.1:{broker.port}/", "topic prefix"),
                     (f"mqtt://127.0.0.1:{broker.port}/a/#", "without wildcards"),
                     (f"mqtt://127.0.0.1:{broker.port}/a/+/b", "without wildcards"),
                     ("mqtt://no-such-host.invalid/x", "cannot resolve")):
        with pytest.raises(RunError, match=msg) as e:
            run(bundle_dir, source=str(heldout_video), mqtt=url, print_every=0, max_frames=1)
        assert PASSWORD not in str(e.value)


def test_broker_restart_loses_no_state_and_does_not_slow_the_loop(broker, bundle_dir, heldout_video):
    stop = threading.Event()
    stamps: list[float] = []
    published: list[int] = []
    port = devicekit.free_port()

    def on_result(r, f):
        stamps.append(time.monotonic())
        if r.changed or r.frame % 10 == 0:
            published.append(r.frame)

    out = {}
    t = threading.Thread(target=lambda: out.setdefault("s", run(
        bundle_dir, source=str(heldout_video), loop=True, mqtt=broker.url(PREFIX), mqtt_every=10, print_every=0,
        http=f"127.0.0.1:{port}", stop=stop, on_result=on_result, handle_signals=False)))
    t.start()
    try:
        while len(stamps) < 50:
            time.sleep(0.05)
        time.sleep(1.5)
        t_down = time.monotonic()
        broker.stop()  # killed: retained messages are gone (no persistence)
        time.sleep(3.0)
        t_up = time.monotonic()
        broker.start()
        sub = Subscriber(broker.port)
        # the output reconnects (paho backoff) and announces everything again
        assert sub.wait_for(lambda m: m[0].endswith("/fps/config"), timeout=20), "discovery was not re-sent"
        assert sub.wait_for(lambda m: m[0] == f"{PREFIX}/availability" and m[1] == "online", timeout=5)
        assert sub.wait_for(lambda m: m[0] == f"{PREFIX}/state", timeout=5)
        metrics = urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=5).read().decode()
    finally:
        stop.set()
        t.join(30)
    s = out["s"]
    assert s.exit_code == 0
    sub.wait_for(lambda m: m[0] == f"{PREFIX}/availability" and m[1] == "offline")
    sub.close()
    late = Subscriber(broker.port)
    kept = late.retained()
    late.close()
    # no state lost: the broker holds the newest state the loop published, even though it was restarted
    assert json.loads(kept[f"{PREFIX}/state"])["frame"] == published[-1] > 0
    # the loop never waited for the broker: as many frames per second while it was down as before
    before = sum(t_down - 1.5 <= x < t_down for x in stamps) / 1.5
    during = sum(t_down <= x < t_up for x in stamps) / (t_up - t_down)
    assert during >= 0.6 * before, (before, during)
    assert "edgelite_mqtt_connects_total 2" in metrics and "edgelite_mqtt_connected 1" in metrics
    assert "edgelite_mqtt_dropped_total" in metrics
