"""`edgelite bench --host user@host`: the same bench, run on the device through its agent, result pulled back.

One SSH session (`edgelite.remote`: the same host-key policy, identity, known_hosts and connection reuse
as `edgelite deploy`, keys only), and on the device only the agent (`edgelite.remote.agent`; its `*-bench`
requests are `edgelite.deploy.agent.bench`):

1. the agent is pushed to DIR (default ~/edgelite), as `edgelite deploy` does first, and `prepare-bench`
   makes a temporary work folder and says which edgelite will run the bench: the deployed install (the
   venv of DIR/current's release), else `edgelite` on the PATH, else none ("temporary": this edgelite's
   pure-Python package is copied over and run with the device's python3, in a throwaway venv with the
   core wheels when python3 lacks numpy/OpenCV/LiteRT);
2. local bundles/models (and --data, --pipeline files) go over as one tar stream into the work folder,
   then the `bench` request runs `edgelite bench ... --json -` there: its progress reaches this terminal
   as it comes, its JSON comes back in the agent's reply;
3. `clean-bench` removes the work folder, whatever happened.

A path prefixed `device:` is already on the device and is used where it is (`device:~/edgelite/bundle`);
`device:deployed` is the bundle of the release `edgelite deploy` made current (DIR/current).
"""

from __future__ import annotations

import dataclasses
import sys
from pathlib import Path
from typing import Any

from edgelite.bench.errors import BenchUsageError
from edgelite.bench.options import BenchOptions, device_argv
from edgelite.bench.report import check_result
from edgelite.errors import EXIT_REMOTE
from edgelite.remote import layout
from edgelite.remote.agent import Agent, push_agent
from edgelite.remote.connection import Connection
from edgelite.remote.errors import RemoteError
from edgelite.remote.target import parse_target

DEVICE_PREFIX = "device:"


def plan_paths(paths: list[str], data: str | None, pipeline: str | None, deployed_bundle: str | None = None,
               directory: str = layout.DEFAULT_DIR) -> tuple[list[str], str | None, str | None, list[tuple[Path, str]]]:
    """Device-side names for the targets, --data and --pipeline, and the (local, archive name) uploads.

    Device names are relative to the work folder (the bench runs there); `device:` paths are kept as
    written (the agent expands `~/`).

    >>> plan_paths(["device:~/edgelite/bundle"], None, "0")
    (['~/edgelite/bundle'], None, '0', [])
    """
    uploads: list[tuple[Path, str]] = []
    remote_targets: list[str] = []
    for i, raw in enumerate(paths):
        if raw == DEVICE_PREFIX + "deployed":
            if not deployed_bundle:
                raise BenchUsageError(f"device:deployed: the device has no current release ({directory}/"
                                      f"{layout.CURRENT}); deploy one with `edgelite deploy` (--dir {directory}) "
                                      "or give a bundle path")
            remote_targets.append(deployed_bundle)
            continue
        if raw.startswith(DEVICE_PREFIX):
            remote_targets.append(raw[len(DEVICE_PREFIX):])
            continue
        p = Path(raw)
        if not p.exists():
            raise BenchUsageError(f"{p} does not exist here; to bench a path on the device write {DEVICE_PREFIX}{raw}")
        arc = f"t{i}/{p.resolve().name}"
        uploads.append((p, arc))
        remote_targets.append(arc)

    def one(value: str | None, kind: str) -> str | None:
        if value is None:
            return None
        if value.startswith(DEVICE_PREFIX):
            return value[len(DEVICE_PREFIX):]
        p = Path(value)
        if p.exists():
            arc = f"{kind}/{p.resolve().name}"
            uploads.append((p, arc))
            return arc
        if kind == "data":
            raise BenchUsageError(f"--data {value} does not exist here; for a path on the device write {DEVICE_PREFIX}{value}")
        return value  # a camera index, /dev/video0, a URL or picamera2: the device's own

    return remote_targets, one(data, "data"), one(pipeline, "pipeline"), uploads


def _clean(agent: Agent, work: str) -> None:
    try:
        agent.call("clean-bench", ssh_timeout=120, work=work)
    except RemoteError:
        print(f"edgelite bench: could not remove {work} on {agent.remote.target}", file=sys.stderr)


def bench_remote(host: str | Connection | None, paths: list[str], opts: BenchOptions | None = None, *,
                 ssh_options: list[str] | tuple[str, ...] = (), **options: Any) -> dict[str, Any]:
    """Run `edgelite bench` on a device through its agent and return the result dict (with a `remote` section).

    Options as `BenchOptions` (or keywords of the same names; `progress` defaults to off here). The
    device is `host` — a Connection (`--host`, `--identity`, ..., `--dir`) or a destination as for
    `make deploy` (user@host[:port], ssh://..., user@[::1]:2222) reached with `ssh_options` — or, when
    `host` is None, `opts.connection`.

        >>> bench_remote("pi@raspberrypi.local", ["bundles/demo"], formats="int8")["remote"]  # doctest: +SKIP
        {'host': 'pi@raspberrypi.local', 'install': 'deployed', ...}
    """
    import edgelite

    if opts is None:
        options.setdefault("progress", False)  # a bar over SSH only when asked for
    opts = dataclasses.replace(opts, **options) if opts is not None else BenchOptions(**options)
    opts.validate()
    host = host if host is not None else opts.connection
    if isinstance(host, Connection):
        conn = dataclasses.replace(host, ssh_options=(*host.ssh_options, *ssh_options))
    else:
        conn = Connection(parse_target(host or ""), ssh_options=tuple(ssh_options))
    data, pipeline = opts.data, opts.pipeline
    where = str(conn.target)
    plan_paths(list(paths), data, pipeline, "?")  # refuse bad paths before connecting
    with conn.remote() as remote:
        agent = push_agent(remote, conn.dir, transfer="tar")  # tar: as the files below go
        info = agent.call("prepare-bench", ssh_timeout=120)
        work, install = str(info["work"]), str(info.get("install") or "temporary")
        try:
            targets, rdata, rpipe, uploads = plan_paths(list(paths), data, pipeline, info.get("bundle"), conn.dir)
            if install == "temporary":
                uploads.append((Path(edgelite.__file__).resolve().parent, "src/edgelite"))
            remote.upload_tar(uploads, work)
            print(f"edgelite bench: running on {where} with the {install} install"
                  + (f" ({info.get('edgelite')})" if info.get("edgelite") else ""), file=sys.stderr)
            reply = agent.call("bench", check=False, ssh_timeout=None, progress=True, work=work, targets=targets,
                               args=device_argv(opts), data=rdata, pipeline=rpipe)
            if not reply["ok"]:
                raise RemoteError(f"on {where}: {reply.get('error')}", int(reply.get("exit_code") or EXIT_REMOTE))
            result = reply["result"]
            try:
                check_result(result, f"the output of edgelite bench on {where}")
            except BenchUsageError:
                raise RemoteError(f"edgelite bench on {where} gave no bench result (exit code "
                                  f"{reply.get('returncode')}); its messages are above", EXIT_REMOTE) from None
        finally:
            _clean(agent, work)

    # device-side work-folder paths -> the local names the user typed
    back = {f"{work}/{arc}": str(local) for local, arc in uploads}
    back.update({arc: str(local) for local, arc in uploads})

    def local(p: str | None) -> str | None:
        if not p:
            return p
        for k, v in back.items():
            if p == k or p.startswith(k + "/"):
                return v + p[len(k):]
        return p

    for t in result.get("targets", []):
        t["path"] = local(t.get("path"))
    for r in result.get("rows", []):
        r["target"], r["file"] = local(r.get("target")), local(r.get("file"))
        if r.get("pipeline"):
            r["pipeline"]["source"] = local(r["pipeline"].get("source"))
    s = result.get("settings", {})
    s["data"], s["pipeline"] = data, pipeline
    result["remote"] = {"host": where, "install": install, "edgelite": info.get("edgelite"),
                        "python": info.get("python"), "tmp": work}
    return result
