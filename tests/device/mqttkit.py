"""A real MQTT broker for the tests: Debian's mosquitto on 127.0.0.1 (a free port), with a password file,
no persistence (a restart loses every retained message, as a broker restart without a volume does), and
a paho subscriber that records what arrives."""

from __future__ import annotations

import shutil
import socket
import subprocess
import threading
import time
from pathlib import Path

MOSQUITTO = shutil.which("mosquitto") or ("/usr/sbin/mosquitto" if Path("/usr/sbin/mosquitto").exists() else None)
USER, PASSWORD = "cam", "s3cret-pw"


class Broker:
    def __init__(self, root: Path, port: int):
        self.root, self.port = root, port
        self.proc: subprocess.Popen | None = None
        root.mkdir(parents=True, exist_ok=True)
        passwd = root / "passwd"
        subprocess.run([shutil.which("mosquitto_passwd") or "/usr/bin/mosquitto_passwd", "-c", "-b", str(passwd),
                        USER, PASSWORD], check=True, capture_output=True)
        passwd.chmod(0o600)
        self.conf = root / "mosquitto.conf"
        self.conf.write_text(f"listener {port} 127.0.0.1\nallow_anonymous false\npassword_file {passwd}\n"
                             "persistence false\nuser root\nlog_dest stderr\nlog_type error\nlog_type warning\n")
        self.log = root / "mosquitto.log"

    def url(self, prefix: str = "edgelite/test", user: str = USER) -> str:
        return f"mqtt://{user}@127.0.0.1:{self.port}/{prefix}"

    def start(self, timeout: float = 10.0) -> Broker:
        self.proc = subprocess.Popen([MOSQUITTO, "-c", str(self.conf)], stdout=subprocess.DEVNULL,
                                     stderr=open(self.log, "ab"))
        end = time.monotonic() + timeout
        while time.monotonic() < end:
            if self.proc.poll() is not None:
                raise RuntimeError(f"mosquitto exited: {self.log.read_text()[-500:]}")
            try:
                with socket.create_connection(("127.0.0.1", self.port), timeout=0.2):
                    return self
            except OSError:
                time.sleep(0.05)
        raise RuntimeError("mosquitto did not listen in time")

    def stop(self) -> None:
        if self.proc and self.proc.poll() is None:
            self.proc.kill()  # like a crash or a container restart: no clean goodbye to clients
            self.proc.wait(5)
        self.proc = None


class Subscriber:
    """A paho client subscribed to `topic` (QoS 1) that records (topic, payload str, qos, retain)."""

    def __init__(self, port: int, topic: str = "#"):
        import paho.mqtt.client as mqtt

        self.messages: list[tuple[str, str, int, bool]] = []
        self.cond = threading.Condition()
        self.subscribed = threading.Event()
        c = mqtt.Client(mqtt.CallbackAPIVersion.VERSION2, protocol=mqtt.MQTTv311)
        c.username_pw_set(USER, PASSWORD)

        def on_connect(client, userdata, flags, rc, props=None):
            client.subscribe(topic, qos=1)

        def on_subscribe(*a):
            self.subscribed.set()

        def on_message(client, userdata, msg):
            with self.cond:
                self.messages.append((msg.topic, msg.payload.decode(), msg.qos, bool(msg.retain)))
                self.cond.notify_all()

        c.on_connect, c.on_subscribe, c.on_message = on_connect, on_subscribe, on_message
        c.connect("127.0.0.1", port, keepalive=10)
        c.loop_start()
        self.client = c
        if not self.subscribed.wait(5):
            raise RuntimeError("subscriber did not subscribe")

    def wait_for(self, predicate, timeout: float = 10.0) -> list:
        end = time.monotonic() + timeout
        with self.cond:
            while True:
                hits = [m for m in self.messages if predicate(m)]
                if hits or time.monotonic() > end:
                    return hits
                self.cond.wait(0.1)

    def retained(self, settle: float = 0.5) -> dict[str, str]:
        """{topic: payload} of the retained messages (a fresh subscriber gets them right after subscribing)."""
        time.sleep(settle)
        with self.cond:
            return {t: p for t, p, _, r in self.messages if r}

    def close(self) -> None:
        self.client.loop_stop()
        self.client.disconnect()
