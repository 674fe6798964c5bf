"""`edgelite fleet`: argparse only. The work is in `edgelite.fleet.rollout` and `.status`, imported when a
subcommand runs; they drive `ansible-playbook` (pip install 'edgelite[fleet]')."""

from __future__ import annotations

import argparse

from edgelite.deploy.agent import DEFAULT_HTTP, HEALTH_TIMEOUT
from edgelite.remote.layout import DEFAULT_DIR

EXAMPLES = """\
examples:
  edgelite fleet deploy bundles/demo -i hosts.ini --canary 1 --serial 25% --max-fail 10% --offline
  edgelite fleet deploy bundles/demo -i hosts.ini --limit greenhouse --dry-run
  edgelite fleet status -i hosts.ini [--json]
  edgelite fleet rollback -i hosts.ini --limit pi-07
  edgelite fleet logs -i hosts.ini pi-07 -n 100
  ansible-playbook -i hosts.ini "$(edgelite fleet playbook)" -e bundle=bundles/demo   # the role, without us

Per-host settings come from the inventory (edgelite_source, edgelite_http, edgelite_token from
ansible-vault or an environment variable, edgelite_format, edgelite_threads); the flags below are defaults.
exit codes: 0 every host runs the release; 2 usage; 4 the bundle fails its checksums;
            9 some hosts did not get it (refused, failed, rolled back, unreachable, not started)
"""


def register(sub) -> None:
    p = sub.add_parser("fleet", help="roll a bundle out to many devices with Ansible (canary, batches, rollback)",
                       description="Deploy to many devices at once with Ansible: the canary batch first, then "
                                   "batches; each host health-checks its new release and rolls itself back when "
                                   "it is unhealthy; past --max-fail no later batch starts.",
                       epilog=EXAMPLES)
    fsub = p.add_subparsers(dest="fleet_command", metavar="SUBCOMMAND", required=True)

    d = fsub.add_parser("deploy", help="roll BUNDLE out to the inventory's hosts")
    d.add_argument("bundle", metavar="BUNDLE", help="bundle directory (edgelite.json)")
    _inventory(d)
    r = d.add_argument_group("rollout")
    r.add_argument("--canary", type=int, default=1, metavar="N", help="hosts in the first batch (default 1; 0: none)")
    r.add_argument("--serial", default="100%", metavar="N|P%", help="hosts per later batch (default 100%%)")
    r.add_argument("--max-fail", default="0%", metavar="P%",
                   help="failed hosts a batch may have before no later batch starts (default 0%%: none)")
    r.add_argument("--forks", type=int, default=5, metavar="N", help="hosts worked on in parallel (default 5)")
    r.add_argument("--offline", action="store_true", help="push every dependency wheel from here (built once)")
    r.add_argument("--dry-run", action="store_true", help="preflight and plan; report what would change")
    r.add_argument("--json", metavar="FILE|-", help="write the summary as JSON (- = stdout; Ansible's output to stderr)")
    r.add_argument("--wheel", metavar="FILE", help="edgelite wheel to install (default: built from this checkout)")
    s = d.add_argument_group("defaults for the hosts (an inventory value wins)")
    s.add_argument("--source", metavar="SRC", help="camera index, /dev/videoN, picamera2, URL or a video file here")
    s.add_argument("--http", metavar="[HOST:]PORT", help=f"preview and /healthz address on the device ({DEFAULT_HTTP})")
    s.add_argument("--format", metavar="NAME", help="bundle model to run (int8, fp16, ...)")
    s.add_argument("--threads", type=int, metavar="N", help="interpreter threads (edgelite run --num-threads)")
    s.add_argument("--health-timeout", type=float, metavar="S", help=f"seconds to become healthy (default {HEALTH_TIMEOUT:g})")
    s.add_argument("--dir", metavar="DIR", help=f"the edgelite folder on the devices (default {DEFAULT_DIR})")
    d.set_defaults(func=_deploy)

    st = fsub.add_parser("status", help="one row per host: release, model, service, health, fps, version")
    _inventory(st)
    st.add_argument("--json", action="store_true", help="print the rows as JSON")
    st.set_defaults(func=_status)

    rb = fsub.add_parser("rollback", help="each host back one release (health-checked on the device)")
    _inventory(rb)
    rb.set_defaults(func=_rollback)

    lg = fsub.add_parser("logs", help="the service's log on one host")
    _inventory(lg, limit=False)
    lg.add_argument("host", metavar="HOST", help="the inventory name of the host")
    lg.add_argument("-n", "--lines", type=int, default=50, metavar="N", help="lines (default 50)")
    lg.set_defaults(func=_logs)

    pb = fsub.add_parser("playbook", help="print the path of the shipped playbook (for ansible-playbook)")
    pb.set_defaults(func=_playbook)

    pl = fsub.add_parser("plan", help="the rollout plan as JSON: a request on stdin (what the role sends), "
                                      "every host's deploy plan on stdout")
    pl.set_defaults(func=_plan)


def _inventory(p: argparse.ArgumentParser, limit: bool = True) -> None:
    g = p.add_argument_group("Ansible")
    g.add_argument("-i", "--inventory", required=True, metavar="INVENTORY", help="Ansible inventory (file or folder)")
    if limit:
        g.add_argument("-l", "--limit", metavar="PATTERN", help="only these hosts (an Ansible host pattern)")
    g.add_argument("--vault-password-file", metavar="FILE", help="for vault-encrypted inventory values (tokens)")
    g.add_argument("--known-hosts", metavar="FILE", help="known_hosts file for the devices' keys (default: ssh's)")
    g.add_argument("--strict-host-key", action="store_true",
                   help="require each device's host key in known_hosts already (default, as edgelite deploy: accept "
                        "a new device's key on first contact and remember it, refuse a changed one)")
    g.add_argument("-v", "--verbose", action="store_true", help="Ansible's -v")


def _options(args: argparse.Namespace):
    from edgelite.fleet.rollout import FleetOptions
    from edgelite.options import from_namespace

    return from_namespace(FleetOptions, args)


def _deploy(args: argparse.Namespace) -> int:
    from edgelite.fleet.rollout import deploy

    deploy(_options(args))
    return 0


def _rollback(args: argparse.Namespace) -> int:
    from edgelite.fleet.rollout import rollback

    rollback(_options(args))
    return 0


def _status(args: argparse.Namespace) -> int:
    from edgelite.fleet.status import status

    status(args.inventory, limit=args.limit, as_json=args.json, strict_host_key=args.strict_host_key,
           known_hosts=args.known_hosts)
    return 0


def _logs(args: argparse.Namespace) -> int:
    from edgelite.fleet.status import logs

    logs(args.inventory, args.host, lines=args.lines, strict_host_key=args.strict_host_key, known_hosts=args.known_hosts)
    return 0


def _plan(args: argparse.Namespace) -> int:
    from edgelite.fleet.plan import main

    return main([])


def _playbook(args: argparse.Namespace) -> int:
    from edgelite.fleet.runner import playbook

    print(playbook("deploy"))
    return 0
