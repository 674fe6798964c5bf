"""`edgelite deploy`: argparse only. The work is in `edgelite.deploy.deploy`, imported when the command runs."""

from __future__ import annotations

import os

from edgelite.deploy.agent import DEFAULT_HTTP, HEALTH_TIMEOUT, KEEP, PRINT_EVERY
from edgelite.remote.connection import add_connection_arguments
from edgelite.remote.pulled import MAX_FILE_MB, MAX_FILES, MAX_MB, Caps

EXAMPLES = """\
examples:
  edgelite deploy bundles/demo --host pi@raspberrypi.local                  # camera 0, preview on the Pi's loopback
  edgelite deploy bundles/demo --host pi@10.0.0.7:2222 --identity ~/.ssh/pi --offline --source clip.mp4
  edgelite deploy --host pi@raspberrypi.local --status | --logs [-n 100] [--follow] | --rollback | --uninstall
  edgelite deploy bundles/demo --host pi@raspberrypi.local --save-uncertain --run-args '--below 0.5 --max-per-hour 30'
  edgelite deploy --host pi@raspberrypi.local --pull-frames frames/       # then: edgelite adapt ... --unlabeled frames/
  edgelite deploy bundles/demo --host pi@raspberrypi.local --trust release.pub   # from now on: signed bundles only
  EDGELITE_MQTT_PASSWORD=... edgelite deploy bundles/demo --host pi@raspberrypi.local --run-args '--mqtt mqtt://cam@broker.local/edgelite/kitchen'

A local --source FILE is copied to the device and played in a loop at its frame rate.
exit codes: 0 ok; 2 usage; 3 preflight refused; 4 checksum mismatch; 5 smoke test failed (nothing switched);
            6 unhealthy, switched back to the previous release; 7 SSH connection/authentication; 8 a device step failed;
            10 the bundle is not signed by a key the device trusts (nothing switched)
"""


def register(sub) -> None:
    p = sub.add_parser(
        "deploy", help="push a bundle to a device over SSH and run it as a service (status, logs, rollback)",
        description="Push a bundle to a Raspberry Pi (or any 64-bit Linux box) over SSH, install edgelite in a venv, "
                    "smoke-test it, switch atomically, run it as a systemd service (or a supervised process) and "
                    "health-check it; an unhealthy release is rolled back.",
        epilog=EXAMPLES)
    p.add_argument("bundle", metavar="BUNDLE", nargs="?", help="bundle directory (edgelite.json) to deploy")
    add_connection_arguments(p, host_required=True)
    r = p.add_argument_group("what runs on the device")
    r.add_argument("--source", default=os.environ.get("EDGELITE_SOURCE") or "0", metavar="SRC",
                   help="camera index (0), /dev/videoN, picamera2, a URL, a device path, or a local video file "
                        "(copied over and looped). Default $EDGELITE_SOURCE, else 0 (a camera URL with a password: "
                        "prefer $EDGELITE_SOURCE, `ps` shows --source to every user)")
    r.add_argument("--http", default=DEFAULT_HTTP, metavar="[HOST:]PORT",
                   help=f"the preview/health address on the device (default {DEFAULT_HTTP}: loopback only)")
    r.add_argument("--format", metavar="NAME", help="bundle model to run (int8, fp16, edgetpu, ...; default: the best)")
    r.add_argument("--print-every", type=int, default=PRINT_EVERY, metavar="N",
                   help=f"a console/log line every N results (default {PRINT_EVERY})")
    r.add_argument("--token-file", metavar="FILE",
                   help="the preview token (needed with --http beyond 127.0.0.1) from FILE's first line; default "
                        "$EDGELITE_TOKEN. It reaches the service through a 0600 file, never a command line")
    r.add_argument("--mqtt-password-file", metavar="FILE",
                   help="with --run-args '--mqtt mqtt://USER@BROKER/PREFIX': the broker's password from FILE's first "
                        "line; default $EDGELITE_MQTT_PASSWORD. Like the token, it reaches the service through a 0600 "
                        "file, never a command line (deploy installs paho-mqtt on the device for --mqtt)")
    r.add_argument("--run-args", default="", metavar="'ARGS'", help="more `edgelite run` options, e.g. '--threads 4'")
    r.add_argument("--save-uncertain", action="store_true",
                   help="the service keeps its low-confidence frames in DIR/frames (caps and --below through "
                        "--run-args); fetch them with --pull-frames")
    d = p.add_argument_group("how")
    d.add_argument("--offline", action="store_true",
                   help="download the device's wheels here (for its architecture and Python) and push them: "
                        "the device needs no internet")
    d.add_argument("--no-service", action="store_true", help="install and switch, but start no service")
    d.add_argument("--no-smoke-test", dest="smoke_test", action="store_false",
                   help="skip the one-inference test on the device before the switch")
    d.add_argument("--health-timeout", type=float, default=HEALTH_TIMEOUT, metavar="S",
                   help="seconds for the new release to report frames on /healthz before it is rolled back "
                        f"(default {HEALTH_TIMEOUT:g})")
    d.add_argument("--keep", type=int, default=KEEP, metavar="N",
                   help=f"releases the device keeps after a healthy switch: the N newest (and the current one), "
                        f"with the bundles and venvs they use; older ones are removed (default {KEEP})")
    d.add_argument("--transfer", choices=["auto", "rsync", "scp"], default="auto",
                   help="file copy tool (default: rsync when both ends have it, else scp)")
    d.add_argument("--wheel", metavar="FILE", help="edgelite wheel to install (default: built from this checkout)")
    t = p.add_argument_group("signed bundles (`edgelite sign`): the device's trust list, DIR/trusted_signers")
    t.add_argument("--trust", action="append", metavar="KEY.pub",
                   help="the device runs only bundles signed by this key (repeat for several; replaces the list)")
    t.add_argument("--allowed-signers", metavar="FILE",
                   help="the same from an OpenSSH allowed-signers file (man ssh-keygen); with --trust: both")
    t.add_argument("--remove-trust", action="store_true",
                   help="delete the device's trust list: it runs unsigned bundles again")
    d.add_argument("-v", "--verbose", action="store_true", help="show the ssh/rsync commands and pip's output")
    a = p.add_argument_group("instead of deploying").add_mutually_exclusive_group()
    a.add_argument("--status", action="store_true", help="what runs on the device, its health, the releases kept")
    a.add_argument("--logs", action="store_true", help="the service's log (journald or the supervisor's log)")
    a.add_argument("--rollback", action="store_true", help="go back one release (health-checked)")
    a.add_argument("--uninstall", action="store_true", help="stop the service and remove DIR from the device")
    a.add_argument("--pull-frames", metavar="LOCAL_DIR",
                   help="move the frames the service kept (--save-uncertain) into LOCAL_DIR, to label and retrain on")
    p.add_argument("--pull-max-files", type=int, default=MAX_FILES, metavar="N",
                   help=f"with --pull-frames: stop after N files (default {MAX_FILES}; pull again for the rest)")
    p.add_argument("--pull-max-mb", type=float, default=MAX_MB, metavar="MB",
                   help=f"with --pull-frames: stop after MB megabytes (default {MAX_MB}); files over "
                        f"{MAX_FILE_MB} MB are never pulled")
    p.add_argument("-n", "--lines", type=int, default=50, metavar="N", help="with --logs: how many lines (default 50)")
    p.add_argument("-f", "--follow", action="store_true", help="with --logs: keep printing new lines")
    p.add_argument("--json", nargs="?", const="-", default=None, metavar="-|FILE",
                   help="with --status (or a deploy): write the result as JSON to FILE or - (stdout; "
                        "the default when no FILE follows)")
    p.set_defaults(func=deploy_command)


#: flags that do something else than deploy (or shape what they print); not DeployOptions fields
ACTION_FLAGS = ("status", "logs", "rollback", "uninstall", "pull_frames", "pull_max_files", "pull_max_mb", "lines", "follow", "json")


def options_from_args(args, conn):
    """argparse namespace -> DeployOptions, by field name; `conn` is the Connection the SSH flags make."""
    from pathlib import Path

    from edgelite.deploy.deploy import DeployOptions
    from edgelite.options import from_namespace

    return from_namespace(DeployOptions, args, bundle=Path(args.bundle), connection=conn)


def _write_json(obj, where: str, indent: int | None = None) -> None:
    """`--json -|FILE`: JSON on stdout, or into FILE (atomically, owner-only), camera passwords redacted."""
    import json

    obj = _redacted(obj)
    if where == "-":
        print(json.dumps(obj, indent=indent))
    else:
        from edgelite.jsonfile import write_json

        write_json(where, obj, mode=0o600)


def _redacted(obj):
    """Every `source` (a camera URL may hold a password) through `redact_url`, at any depth."""
    from edgelite.device.sources.rtsp import redact_url

    if isinstance(obj, dict):
        return {k: redact_url(v) if k == "source" and isinstance(v, str) else _redacted(v) for k, v in obj.items()}
    if isinstance(obj, list):
        return [_redacted(v) for v in obj]
    return obj


def deploy_command(args) -> int:
    from edgelite.deploy import deploy as d
    from edgelite.deploy.errors import EXIT_USAGE, DeployError
    from edgelite.remote.connection import Connection

    conn = Connection.from_args(args)
    if args.status:
        st = d.device_status(conn)
        if args.json:
            _write_json(st, args.json, indent=1)
        if args.json != "-":
            print(d.format_status(st, conn.target))
        return 0
    if args.logs:
        return d.device_logs(conn, args.lines, args.follow)
    if args.rollback:
        d.rollback(conn, args.health_timeout)
        return 0
    if args.uninstall:
        d.uninstall(conn)
        return 0
    if args.pull_frames:
        d.pull_frames(conn, args.pull_frames, transfer=args.transfer,
                      caps=Caps(max_files=args.pull_max_files, max_mb=args.pull_max_mb))
        return 0
    if not args.bundle and (args.trust or args.allowed_signers or args.remove_trust):
        from edgelite.signature import trust_list

        d.set_trust(conn, trust_list(args.trust or (), args.allowed_signers), remove=args.remove_trust)
        return 0
    if not args.bundle:
        raise DeployError("which bundle? `edgelite deploy BUNDLE --host USER@HOST` "
                          "(or --status / --logs / --rollback / --uninstall / --pull-frames DIR / --trust KEY.pub)", EXIT_USAGE)
    result = d.deploy(options_from_args(args, conn))
    if args.json:
        _write_json(result, args.json)
    return 0
