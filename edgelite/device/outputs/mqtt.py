"""`edgelite run --mqtt mqtt://[user@]host[:port]/topic/prefix`: results where home and factory systems listen.

Topics under the prefix (``edgelite/kitchen`` below)::

    edgelite/kitchen/availability   "online" / "offline" (retained; "offline" is the last will)
    edgelite/kitchen/state          {"label", "score", "fps", "top_k", "frame", "timestamp", "model", ...}
                                    on each label change (and every --mqtt-every N results), retained, QoS 1
    homeassistant/sensor/<id>/{label,score,fps}/config   Home Assistant MQTT discovery (retained)

The password comes from $EDGELITE_MQTT_PASSWORD (never from the URL: it would show in `ps` and logs);
``mqtts://`` is TLS (port 8883; system CAs, or --mqtt-ca FILE). paho-mqtt (`pip install
'edgelite[mqtt]'`) is imported only when --mqtt is given.

The camera loop never waits for the broker: `write` appends to a bounded queue (the oldest message is
dropped and counted when it is full) and one thread publishes from it while connected, at most INFLIGHT
messages unacknowledged at a time: a broker that never acknowledges (or is slow) leaves the rest in that
bounded queue, never in paho's own (capped too). A message counts as published when the broker
acknowledges it (QoS 1 PUBACK); /metrics shows queued, unacknowledged and dropped as they are. paho reconnects
with backoff, and every (re)connect publishes availability, discovery and the latest state again, so a
broker that restarted without persistence gets everything back. A wrong password or an unknown host is
a one-line error at start; a broker that is merely down is a warning, and results flow when it is up.
"""

from __future__ import annotations

import collections
import dataclasses
import json
import logging
import os
import re
import socket
import threading
import time
from typing import Any
from urllib.parse import unquote, urlsplit

from edgelite.device.errors import RunError
from edgelite.device.outputs.base import Output
from edgelite.device.token import MQTT_PASSWORD_ENV

log = logging.getLogger("edgelite.device")

PASSWORD_ENV = MQTT_PASSWORD_ENV
DEFAULT_PORTS = {"mqtt": 1883, "mqtts": 8883}
QOS = 1
QUEUE_SIZE = 256  # messages waiting for the broker; beyond that the oldest is dropped (and counted)
INFLIGHT = 32  # messages handed to paho and not yet acknowledged by the broker
# paho's own queue: the in-flight ones + what a (re)connect announces (availability, 3 discovery configs,
# the state); beyond it paho refuses a publish instead of growing
PAHO_QUEUE = INFLIGHT + 8
CONNECT_WAIT = 5.0  # s the start waits for the broker's answer (auth errors surface here)
BACKOFF = (0.5, 30.0)  # reconnect delay: first, max (paho doubles it per failed attempt)
_AUTH_FAILURES = {4: "bad user name or password", 5: "not authorized", 134: "bad user name or password",
                  135: "not authorized"}


@dataclasses.dataclass(frozen=True)
class MqttTarget:
    host: str
    port: int
    prefix: str  # topic prefix, no leading/trailing '/'
    tls: bool = False
    username: str | None = None

    @property
    def url(self) -> str:
        """The URL without any secret (for logs)."""
        user = f"{self.username}@" if self.username else ""
        return f"{'mqtts' if self.tls else 'mqtt'}://{user}{self.host}:{self.port}/{self.prefix}"


def parse_mqtt_url(url: str) -> MqttTarget:
    """``mqtt[s]://[user@]host[:port]/topic/prefix`` -> MqttTarget; a RunError (one line) when malformed.

    >>> parse_mqtt_url("mqtt://cam@broker.local/edgelite/kitchen")
    MqttTarget(host='broker.local', port=1883, prefix='edgelite/kitchen', tls=False, username='cam')
    """
    u = urlsplit(url)
    if u.scheme not in DEFAULT_PORTS:
        raise RunError(f"--mqtt {url!r}: expected mqtt://[user@]host[:port]/topic/prefix (or mqtts:// for TLS)")
    if u.password is not None:
        raise RunError(f"--mqtt: put the password in ${PASSWORD_ENV}, not in the URL "
                       "(a URL shows in `ps`, shell history and logs)")
    try:
        port = u.port or DEFAULT_PORTS[u.scheme]
    except ValueError:
        raise RunError(f"--mqtt: bad port in {url!r}") from None
    if not u.hostname:
        raise RunError(f"--mqtt {url!r}: no broker host; e.g. mqtt://broker.local/edgelite/kitchen")
    prefix = u.path.strip("/")
    if not prefix or any(c in prefix for c in "+#") or "//" in prefix or u.fragment or "#" in url:
        raise RunError(f"--mqtt {url!r}: give a topic prefix without wildcards, e.g. mqtt://{u.hostname}/edgelite/cam1")
    return MqttTarget(host=u.hostname, port=port, prefix=prefix, tls=u.scheme == "mqtts",
                      username=unquote(u.username) if u.username else None)


def node_id(prefix: str) -> str:
    """Home Assistant's node id for a topic prefix: [a-zA-Z0-9_-] only."""
    return re.sub(r"[^a-zA-Z0-9_-]+", "_", prefix).strip("_") or "edgelite"


def discovery_payloads(target: MqttTarget, info: dict, discovery_prefix: str) -> dict[str, dict]:
    """{config topic: payload} announcing the label, score and FPS sensors to Home Assistant."""
    from edgelite import __version__

    nid = node_id(target.prefix)
    state, avail = f"{target.prefix}/state", f"{target.prefix}/availability"
    device = {"identifiers": [f"edgelite_{nid}"], "name": f"edgelite {target.prefix}", "manufacturer": "edgelite",
              "model": f"{info.get('model', '?')} ({info.get('runtime', '?')})", "sw_version": __version__}
    common = {"state_topic": state, "availability_topic": avail, "payload_available": "online",
              "payload_not_available": "offline", "device": device}
    sensors = {
        "label": {"name": "Label", "value_template": "{{ value_json.label if value_json.label else 'none' }}",
                  "json_attributes_topic": state, "icon": "mdi:label"},
        "score": {"name": "Score", "value_template": "{{ (value_json.score * 100) | round(1) }}",
                  "unit_of_measurement": "%", "state_class": "measurement", "icon": "mdi:percent"},
        "fps": {"name": "FPS", "value_template": "{{ value_json.fps | round(1) }}", "unit_of_measurement": "fps",
                "state_class": "measurement", "icon": "mdi:speedometer"},
    }
    # Home Assistant 2025.10 deprecated `object_id` (ignored from 2026.4): the entity id it suggests is now
    # `default_entity_id`, a whole entity id "<domain>.<slug>" (here sensor.edgelite_<node>_<key>)
    return {f"{discovery_prefix}/sensor/{nid}/{key}/config": {
                **common, **cfg, "unique_id": f"edgelite_{nid}_{key}",
                "default_entity_id": f"sensor.{entity_slug(f'edgelite_{nid}_{key}')}"}
            for key, cfg in sensors.items()}


def entity_slug(text: str) -> str:
    """Home Assistant's object-id rule: [a-z0-9_], no leading/trailing or double underscore.

    >>> entity_slug("edgelite_Cam-1__front_label")
    'edgelite_cam_1_front_label'
    """
    return re.sub(r"_+", "_", re.sub(r"[^a-z0-9]+", "_", text.lower())).strip("_") or "edgelite"


def state_payload(result, info: dict) -> dict[str, Any]:
    return {"label": result.label, "score": round(float(result.score), 4), "fps": round(float(result.fps), 2),
            "top_k": [{"label": p.label, "score": round(float(p.score), 4)} for p in result.top_k],
            "changed": bool(result.changed), "previous": result.previous, "frame": result.frame,
            "timestamp": round(result.timestamp, 3), "model": info.get("model")}


class MqttOutput(Output):
    """An output of the camera loop (`write(result, frame)`, `close()`) that publishes to an MQTT broker."""

    def __init__(self, url: str, *, info: dict, every: int = 0, discovery_prefix: str | None = "homeassistant",
                 ca_file: str | None = None, client_id: str | None = None, queue_size: int = QUEUE_SIZE,
                 connect_wait: float = CONNECT_WAIT, backoff: tuple[float, float] = BACKOFF):
        self.target = parse_mqtt_url(url)
        if every < 0:
            raise RunError("--mqtt-every must be >= 0 (0 = label changes only)")
        if ca_file and not os.path.isfile(ca_file):
            raise RunError(f"--mqtt-ca {ca_file}: no such file")
        if ca_file and not self.target.tls:
            raise RunError("--mqtt-ca is for TLS: use an mqtts:// URL")
        try:
            import paho.mqtt.client as mqtt
        except ImportError:
            raise RunError("--mqtt needs paho-mqtt: pip install 'edgelite[mqtt]' (`edgelite deploy` installs it when "
                           "--run-args holds --mqtt)") from None
        self._mqtt = mqtt
        self.info, self.every, self.discovery_prefix = dict(info), every, (discovery_prefix or "").strip("/")
        t = self.target
        self.topic_state, self.topic_avail = f"{t.prefix}/state", f"{t.prefix}/availability"
        self._queue: collections.deque[tuple[str, bytes, bool]] = collections.deque()
        self._queue_size = queue_size
        self._cond = threading.Condition()
        self._connected = False
        self._closing = False
        self._last_state: bytes | None = None
        self._first_answer = threading.Event()
        self._connect_error: str | None = None
        self.published = self.dropped = self.connects = 0
        self._unacked: set[int] = set()  # mids handed to paho that the broker has not acknowledged
        self._acked_early: set[int] = set()  # acknowledged before publish() returned their mid
        self.messages_since_connect = 0

        cid = client_id or f"edgelite-{node_id(t.prefix)}-{os.getpid()}"
        c = mqtt.Client(mqtt.CallbackAPIVersion.VERSION2, client_id=cid, protocol=mqtt.MQTTv311)
        c.on_connect, c.on_disconnect, c.on_publish = self._on_connect, self._on_disconnect, self._on_publish
        c.reconnect_delay_set(min_delay=max(1, int(backoff[0])), max_delay=int(backoff[1]))
        c.max_inflight_messages_set(INFLIGHT)
        c.max_queued_messages_set(PAHO_QUEUE)
        password = os.environ.get(PASSWORD_ENV)
        if t.username or password:
            c.username_pw_set(t.username or "", password)
        if t.tls:
            import ssl

            c.tls_set(ca_certs=ca_file, cert_reqs=ssl.CERT_REQUIRED)
        c.will_set(self.topic_avail, "offline", qos=QOS, retain=True)
        self.client = c
        self._start(connect_wait)
        self._worker = threading.Thread(target=self._publish_loop, name="edgelite-mqtt", daemon=True)
        self._worker.start()

    # ---------------------------------------------------------------- connection
    def _start(self, wait: float) -> None:
        t = self.target
        try:
            socket.getaddrinfo(t.host, t.port)
        except socket.gaierror as e:
            raise RunError(f"--mqtt: cannot resolve broker host {t.host!r} ({e.strerror}); check the URL") from None
        self.client.connect_async(t.host, t.port, keepalive=30)
        self.client.loop_start()
        answered = self._first_answer.wait(wait)
        if self._connect_error:
            self._stop_client()
            raise RunError(f"--mqtt {t.url}: the broker refused the login ({self._connect_error}); "
                           f"check the user in the URL and ${PASSWORD_ENV}")
        if not answered:
            log.warning("mqtt: broker %s not reachable yet; results are queued (up to %d) and sent when it is",
                        t.url, self._queue_size)

    def _on_connect(self, client, userdata, flags, reason_code, properties=None) -> None:
        code = getattr(reason_code, "value", reason_code)
        if code in _AUTH_FAILURES or getattr(reason_code, "is_failure", False):
            self._connect_error = _AUTH_FAILURES.get(code, str(reason_code))
            self._first_answer.set()
            if self.connects:  # credentials revoked mid-run: keep the loop running, say why
                log.warning("mqtt: broker refused the login (%s)", self._connect_error)
            return
        self.connects += 1
        self._connect_error = None
        # everything the broker may have lost (restart without persistence): announce again, newest state
        self._send(self.topic_avail, b"online", True)
        if self.discovery_prefix:
            for topic, payload in discovery_payloads(self.target, self.info, self.discovery_prefix).items():
                self._send(topic, json.dumps(payload, separators=(",", ":")).encode(), True)
        with self._cond:
            self._connected = True
            self.messages_since_connect = 0
            if self._last_state is not None and not any(tp == self.topic_state for tp, _, _ in self._queue):
                self._queue.append((self.topic_state, self._last_state, True))
            self._cond.notify_all()
        if self.connects > 1:
            log.info("mqtt: reconnected to %s", self.target.url)
        self._first_answer.set()

    def _on_disconnect(self, client, userdata, flags, reason_code, properties=None) -> None:
        with self._cond:
            self._connected = False
        if self.connects and not self._closing:  # before the first login the start reports it
            log.warning("mqtt: disconnected from %s (%s); reconnecting with backoff", self.target.url, reason_code)

    def _stop_client(self) -> None:
        # disconnect first: paho's loop does not end while a message waits for its acknowledgement (a broker
        # that never sends one held close() for a minute)
        for step in (self.client.disconnect, self.client.loop_stop):
            try:
                step()
            except Exception:  # already down
                pass

    # ---------------------------------------------------------------- publishing
    def _send(self, topic: str, payload: bytes, retain: bool) -> bool:
        """Hand one message to paho and track it until the broker acknowledges it; False when paho refused it.
        Never called with self._cond held: paho calls on_publish under its own lock (lock order)."""
        info = self.client.publish(topic, payload, qos=QOS, retain=retain)
        if info.rc != self._mqtt.MQTT_ERR_SUCCESS:
            return False
        with self._cond:
            if info.mid in self._acked_early:
                self._acked_early.discard(info.mid)
                self.published += 1
            else:
                self._unacked.add(info.mid)
        return True

    def _on_publish(self, client, userdata, mid, reason_code=None, properties=None) -> None:
        """The broker acknowledged `mid` (QoS 1 PUBACK): only now is it published."""
        with self._cond:
            if mid in self._unacked:
                self._unacked.discard(mid)
                self.published += 1
            else:
                self._acked_early.add(mid)
            self._cond.notify_all()

    def _enqueue(self, topic: str, payload: bytes, retain: bool) -> None:
        with self._cond:
            if len(self._queue) >= self._queue_size:
                self._queue.popleft()
                self.dropped += 1
            self._queue.append((topic, payload, retain))
            self._cond.notify_all()

    def _publish_loop(self) -> None:
        while True:
            with self._cond:
                # an unacknowledging broker holds INFLIGHT messages at most; the rest wait here (bounded)
                while not self._closing and not (self._connected and self._queue and len(self._unacked) < INFLIGHT):
                    self._cond.wait(1.0)
                if self._closing:
                    return  # what is left was flushed by close() or cannot be sent
                topic, payload, retain = self._queue.popleft()
            if not self._send(topic, payload, retain):  # lost the connection in between: keep it for later
                with self._cond:
                    self._queue.appendleft((topic, payload, retain))
                    self._connected = self._connected and self.client.is_connected()
                    self._cond.wait(0.2)
                continue
            with self._cond:
                self.messages_since_connect += 1

    def write(self, result, frame) -> None:
        """Never blocks: a state message goes to the queue on a label change or every --mqtt-every results."""
        if not (result.changed or result.frame == 0 or (self.every and result.frame % self.every == 0)):
            return
        payload = json.dumps(state_payload(result, self.info), separators=(",", ":")).encode()
        with self._cond:
            self._last_state = payload
        self._enqueue(self.topic_state, payload, True)

    def close(self, timeout: float = 2.0) -> None:
        """Send what is queued (up to `timeout`), announce "offline", disconnect."""
        end = time.monotonic() + timeout
        with self._cond:
            while (self._queue or self._unacked) and self._connected and time.monotonic() < end:
                self._cond.wait(0.05)
            self._closing = True
            self._cond.notify_all()
        self._worker.join(timeout=1.0)
        if self.client.is_connected():
            info = self.client.publish(self.topic_avail, "offline", qos=QOS, retain=True)
            try:
                info.wait_for_publish(max(0.1, end - time.monotonic()))
            except (RuntimeError, ValueError):
                pass
        self._stop_client()

    # ---------------------------------------------------------------- observability
    def metric_lines(self) -> list[str]:
        """Prometheus lines for the preview's /metrics."""
        with self._cond:
            q, pub, drop, up, n = len(self._queue), self.published, self.dropped, int(self._connected), self.connects
            unacked = len(self._unacked)
        out = []
        for name, kind, help_, value in (
                ("edgelite_mqtt_connected", "gauge", "1 while connected to the MQTT broker.", up),
                ("edgelite_mqtt_published_total", "counter", "MQTT messages the broker acknowledged.", pub),
                ("edgelite_mqtt_dropped_total", "counter", "MQTT messages dropped because the queue was full.", drop),
                ("edgelite_mqtt_queued", "gauge", "MQTT messages waiting for the broker (not yet sent).", q),
                ("edgelite_mqtt_unacknowledged", "gauge", "MQTT messages sent, not yet acknowledged by the broker.",
                 unacked),
                ("edgelite_mqtt_connects_total", "counter", "Successful (re)connections to the broker.", n)):
            out += [f"# HELP {name} {help_}", f"# TYPE {name} {kind}", f"{name} {value}"]
        return out
