"""`edgelite` command line: argparse wiring only.

Each subpackage owns a small `cli.py` with `register(subparsers)`; those modules import nothing
heavy, and each command imports its library code only when it runs (so `edgelite --help` and
`edgelite run` never import TensorFlow).
"""

from __future__ import annotations

import argparse
import importlib
import sys

from edgelite import __version__

# subpackage cli modules, in the order the commands appear in --help
COMMAND_MODULES = [
    "edgelite.train.cli",  # train, data
    "edgelite.convert.cli",  # convert
    "edgelite.device.cli",  # run
    "edgelite.bench.cli",  # bench
    "edgelite.deploy.cli",  # deploy
    "edgelite.adapt.cli",  # adapt
]


class UserError(Exception):
    """An error the user can fix; printed as one line, exit code 2."""


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="edgelite",
        description="From a folder of labelled photos to a live camera classifier on a Raspberry Pi or Coral Edge TPU.",
        epilog="Run `edgelite COMMAND --help` for a command's options.",
    )
    parser.add_argument("--version", action="version", version=f"edgelite {__version__}")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    for name in COMMAND_MODULES:
        try:
            mod = importlib.import_module(name)
        except ImportError:
            continue  # a subpackage not present in this install
        mod.register(sub)
    return parser


def _user_error_types() -> tuple[type[BaseException], ...]:
    """Exception classes whose message is meant for the user (one line, no traceback)."""
    from edgelite.errors import EdgeliteError

    types: list[type[BaseException]] = [UserError, EdgeliteError]
    from edgelite.bundle import BundleError

    types.append(BundleError)
    for mod, attr in [("edgelite.device.runtime", "ModelLoadError"), ("edgelite.train.errors", "DataError"),
                      ("edgelite.train.errors", "TrainError"), ("edgelite.convert.errors", "ConvertError"),
                      ("edgelite.deploy.errors", "DeployError")]:
        m = sys.modules.get(mod)
        if m is None:
            try:
                m = importlib.import_module(mod)
            except ImportError:
                continue
        if hasattr(m, attr):
            types.append(getattr(m, attr))
    return tuple(types)


def main(argv: list[str] | None = None) -> int:
    import os

    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")  # TensorFlow's C++ start-up chatter
    os.environ.setdefault("TF_USE_LEGACY_KERAS", "1")
    parser = build_parser()
    args = parser.parse_args(argv)
    if not getattr(args, "func", None):
        parser.print_help()
        return 0
    try:
        rc = args.func(args)
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        return 130
    except Exception as e:
        if isinstance(e, _user_error_types()):
            print(f"edgelite {args.command}: error: {e}", file=sys.stderr)
            return getattr(e, "exit_code", 2)
        raise
    return int(rc or 0)


if __name__ == "__main__":
    raise SystemExit(main())
