"""`edgelite deploy`'s options are declared once: DeployOptions holds a Connection (the SSH flags, --dir,
-v) and its other fields are the CLI's flags, with the same defaults. No device needed."""

from __future__ import annotations

import dataclasses
from pathlib import Path

import pytest

from edgelite.deploy.cli import ACTION_FLAGS, options_from_args
from edgelite.deploy.deploy import DeployOptions, _Deployment
from edgelite.deploy.errors import DeployError
from edgelite.remote.connection import SSH_FLAGS, Connection
from edgelite.remote.target import parse_target
from tests.optionskit import check_fields_match_flags, subparser

NOWHERE = Connection(parse_target("pi@127.0.0.1:1"))  # never reached: these checks come before any SSH


def test_deploy_options_fields_are_the_deploy_flags():
    check_fields_match_flags("deploy", DeployOptions, not_flags={"connection"},
                             not_fields={*SSH_FLAGS, "verbose", *ACTION_FLAGS})


def test_options_hold_the_connection_and_are_frozen():
    args = subparser("deploy").parse_args(["b", "--host", "pi@pi4", "--dir", "/srv/el", "-v", "--offline",
                                           "--http", "0.0.0.0:9000", "--json", "out.json"])
    o = options_from_args(args, Connection.from_args(args))
    assert (o.bundle, str(o.connection.target), o.connection.dir, o.connection.verbose, o.offline, o.http) == (
        Path("b"), "pi@pi4", "/srv/el", True, True, "0.0.0.0:9000")
    assert args.json == "out.json" and subparser("deploy").parse_args(["b", "--host", "h", "--json"]).json == "-"
    with pytest.raises(dataclasses.FrozenInstanceError):
        o.offline = False  # type: ignore[misc]


@pytest.mark.parametrize("http, refused", [("127.0.0.1:8080", False), ("8080", False), ("[::1]:80", False),
                                           ("127.0.0.2:8080", False), ("localhost:80", False),
                                           ("0.0.0.0:8080", True), ("[::]:8080", True), ("cam.local:80", True)])
def test_public_preview_rule_is_the_previews(tiny_bundle, http, refused):
    """deploy refuses exactly the addresses `edgelite run --http` would refuse without a token."""
    from edgelite.device.outputs.preview import is_loopback, parse_address

    assert refused == (not is_loopback(parse_address(http)[0]))
    opts = DeployOptions(bundle=tiny_bundle, connection=NOWHERE, http=http)
    if refused:
        with pytest.raises(DeployError, match="--token"):
            _Deployment(opts, None)  # type: ignore[arg-type]
        _Deployment(dataclasses.replace(opts, run_args="--token s3cret"), None)  # type: ignore[arg-type]
    else:
        _Deployment(opts, None)  # type: ignore[arg-type]


def test_a_bad_http_address_is_a_usage_error(tiny_bundle):
    opts = DeployOptions(bundle=tiny_bundle, connection=NOWHERE, http="host:port")
    with pytest.raises(DeployError, match="expected PORT or HOST:PORT") as e:
        _Deployment(opts, None)  # type: ignore[arg-type]
    assert e.value.exit_code == 2
