"""`--mqtt` against a broker that accepts the login and then never acknowledges (issue #22, hole 5): the
messages waiting for it stay bounded (ours and paho's), "published" counts only what the broker
acknowledged, and /metrics' queued / unacknowledged / dropped say what happened. The broker is a real
socket server on 127.0.0.1 speaking just enough MQTT 3.1.1 (CONNACK, then silence)."""

from __future__ import annotations

import socket
import threading
import time

import pytest

from edgelite.device.outputs import mqtt as mqtt_out
from edgelite.device.pipeline import Prediction, Result

pytest.importorskip("paho.mqtt.client", reason="paho-mqtt is not installed (pip install 'edgelite[mqtt]')")


class SilentBroker:
    """Accepts one client's CONNECT with a CONNACK, then reads and discards everything: no PUBACK ever."""

    def __init__(self):
        self.sock = socket.socket()
        self.sock.bind(("127.0.0.1", 0))
        self.sock.listen(4)
        self.port = self.sock.getsockname()[1]
        self.received = 0
        self.stop = threading.Event()
        self.thread = threading.Thread(target=self._serve, daemon=True)
        self.thread.start()

    def _serve(self) -> None:
        self.sock.settimeout(0.2)
        while not self.stop.is_set():
            try:
                conn, _ = self.sock.accept()
            except OSError:
                continue
            threading.Thread(target=self._client, args=(conn,), daemon=True).start()

    def _client(self, conn: socket.socket) -> None:
        conn.settimeout(0.2)
        greeted = False
        with conn:
            while not self.stop.is_set():
                try:
                    data = conn.recv(65536)
                except TimeoutError:
                    continue
                except OSError:
                    return
                if not data:
                    return
                self.received += len(data)
                if not greeted and data[0] >> 4 == 1:  # CONNECT -> CONNACK, session not present, accepted
                    conn.sendall(b"\x20\x02\x00\x00")
                    greeted = True

    def close(self) -> None:
        self.stop.set()
        self.sock.close()


def result(i: int) -> Result:
    label = "cat" if i % 2 else "dog"  # every result a label change: every one is a message
    return Result(frame=i, source_frame=i, timestamp=time.time(), top_k=[Prediction(0, label, 0.9)], label=label,
                  score=0.9, changed=True, previous=None, timings_ms={}, fps=30.0)


def metrics(out) -> dict[str, int]:
    return {ln.split()[0]: int(ln.split()[1]) for ln in out.metric_lines() if not ln.startswith("#")}


def test_a_broker_that_never_acknowledges_keeps_the_queue_bounded_and_metrics_true():
    broker = SilentBroker()
    out = mqtt_out.MqttOutput(f"mqtt://127.0.0.1:{broker.port}/edgelite/silent", info={"model": "int8"},
                              queue_size=64, discovery_prefix=None)
    try:
        n = 5000
        for i in range(n):
            out.write(result(i), None)
            if i % 500 == 0:
                time.sleep(0.05)  # let the publisher thread run
        time.sleep(1.0)
        m = metrics(out)
        paho_queue = len(out.client._out_messages)  # paho's own store of messages it has not finished
        assert m["edgelite_mqtt_connected"] == 1
        assert m["edgelite_mqtt_published_total"] == 0, m  # nothing was acknowledged
        assert paho_queue <= mqtt_out.PAHO_QUEUE, paho_queue
        assert m["edgelite_mqtt_unacknowledged"] == mqtt_out.INFLIGHT, m
        assert m["edgelite_mqtt_queued"] == 64, m  # ours, full: the oldest went
        # every message is accounted for: acknowledged, in flight, waiting, or dropped (and counted)
        assert m["edgelite_mqtt_unacknowledged"] + m["edgelite_mqtt_queued"] + m["edgelite_mqtt_dropped_total"] == n + 1, m  # + "online"
        t0 = time.monotonic()
        out.close(timeout=0.5)
        assert time.monotonic() - t0 < 5  # paho's loop no longer waits for acknowledgements that never come
    finally:
        out.close(timeout=0.5)
        broker.close()


def test_published_counts_acknowledged_messages(tmp_path, monkeypatch):
    """Against a real broker (mosquitto) every message is acknowledged: published = written, nothing waits."""
    from tests.device import devicekit
    from tests.device.mqttkit import MOSQUITTO, PASSWORD, Broker

    if MOSQUITTO is None:
        pytest.skip("mosquitto is not installed (scripts/system-deps.sh)")
    monkeypatch.setenv("EDGELITE_MQTT_PASSWORD", PASSWORD)
    b = Broker(tmp_path / "mosquitto", devicekit.free_port()).start()
    out = mqtt_out.MqttOutput(b.url("edgelite/acked"), info={"model": "int8"}, discovery_prefix=None)
    try:
        for i in range(200):
            out.write(result(i), None)
        deadline = time.monotonic() + 10
        while metrics(out)["edgelite_mqtt_published_total"] < 201 and time.monotonic() < deadline:
            time.sleep(0.05)
        m = metrics(out)
        # 200 states + the "online" announcement, each acknowledged
        assert m["edgelite_mqtt_published_total"] == 201, m
        assert m["edgelite_mqtt_queued"] == 0 and m["edgelite_mqtt_unacknowledged"] == 0, m
        assert m["edgelite_mqtt_dropped_total"] == 0, m
    finally:
        out.close()
        b.stop()
