"""Health: the release's /healthz must report frames; a service that exits or never answers is unhealthy."""

from __future__ import annotations

import json
import time
import urllib.error
import urllib.request

from edgelite.deploy.agent.layout import Layout
from edgelite.deploy.agent.service import log_tail, service_state
from edgelite.http_address import local_url


def health_url(http: str) -> str:
    """http://HOST:PORT/healthz for an `--http` value; a wildcard bind is probed on the loopback."""
    return local_url(http, "/healthz")


def probe_health(url: str, timeout: float = 3.0) -> tuple[int | None, dict | str]:
    """(HTTP status, JSON body) of /healthz, or (None, why it did not answer)."""
    try:
        with urllib.request.urlopen(url, timeout=timeout) as r:
            return r.status, json.loads(r.read().decode())
    except urllib.error.HTTPError as e:
        try:
            return e.code, json.loads(e.read().decode())
        except ValueError:
            return e.code, f"HTTP {e.code}"
    except (OSError, ValueError) as e:
        return None, f"not answering ({getattr(e, 'reason', e)})"


FATAL_WORDS = ("error", "giving up", "terminate called", "traceback")  # the log lines that say why it stopped


def wait_healthy(lay: Layout, svc: dict, rel: dict, timeout: float) -> tuple[bool, str, dict | None]:
    """Poll /healthz until it reports frames (healthy), the service exits (unhealthy) or `timeout` passes."""
    url = health_url(rel["http"])
    t0 = time.monotonic()
    last = "no answer yet"
    while time.monotonic() - t0 < timeout:
        st = service_state(lay, svc)
        if st.get("exits"):
            e = st["exits"][-1]
            errors = [ln for ln in log_tail(lay, svc, 15) if any(w in ln.lower() for w in FATAL_WORDS)]
            detail = f": {errors[-1].split(' ', 1)[-1]}" if errors else ""
            # systemd's ExecMainStatus is the NEW process's once it restarted: 0 then says nothing of the exit
            how = (f"exited with code {e['code']}" if e.get("code") else
                   f"stopped and was restarted ({st['restarts']} restarts)" if st.get("restarts") else "exited")
            return False, f"the service {how} {time.monotonic() - t0:.1f} s after the start{detail}", None
        if svc["mode"] == "supervisor" and not st.get("supervisor_alive"):
            return False, "the supervisor is gone", None
        code, body = probe_health(url)
        if isinstance(body, dict) and rel.get("reports_release") and body.get("release") != rel.get("id"):
            # the old process (systemd restarts with --no-block) or another one on the port: not this release
            last = f"/healthz answers for release {body.get('release')!r}, not {rel.get('id')}"
            time.sleep(0.5)
            continue
        if code == 200 and isinstance(body, dict) and (body.get("frames") or 0) >= 1:
            return True, f"healthy after {time.monotonic() - t0:.1f} s", body
        if isinstance(body, dict):
            last = f"HTTP {code}, status {body.get('status')!r}, {body.get('frames')} frames"
        else:
            last = str(body)
        time.sleep(0.5)
    return False, f"no healthy /healthz at {url} within {timeout:.0f} s (last: {last})", None

