"""`edgelite` command line: argparse wiring only.

Each subpackage owns a small `cli.py` with `register(subparsers)`; those modules import nothing
heavy, and each command imports its library code only when it runs (so `edgelite --help` and
`edgelite run` never import TensorFlow). All subpackages ship in one wheel, so every command module
is imported unconditionally: one that fails to import is a bug and shows its traceback.

Errors: a command raises an `edgelite.errors.EdgeliteError`; `main` prints it as one line,
``edgelite COMMAND: error: <message>``, and returns its ``exit_code`` (the table is
`edgelite.errors.EXIT_CODES`, also in the README). Anything else is a bug and keeps its traceback.
"""

from __future__ import annotations

import argparse
import sys

from edgelite import __version__
from edgelite.adapt import cli as adapt_cli
from edgelite.bench import cli as bench_cli
from edgelite.convert import cli as convert_cli
from edgelite.deploy import cli as deploy_cli
from edgelite.deploy import sign_cli
from edgelite.device import capture_cli
from edgelite.device import cli as device_cli
from edgelite.errors import EXIT_INTERRUPTED, EdgeliteError, require_extra
from edgelite.fleet import cli as fleet_cli
from edgelite.review import cli as review_cli
from edgelite.train import cli as train_cli

# subpackage cli modules, in the order the commands appear in --help
COMMAND_MODULES = [
    train_cli,  # train, data
    adapt_cli,  # adapt
    convert_cli,  # convert
    device_cli,  # run
    capture_cli,  # capture
    bench_cli,  # bench
    sign_cli,  # sign
    deploy_cli,  # deploy
    fleet_cli,  # fleet
    review_cli,  # review
]

#: commands that need an optional extra: command -> (extra, the modules it installs that the command imports).
#: Checked before the command runs, so a device install (`pip install edgelite`) gets one line, not a traceback.
COMMAND_EXTRAS: dict[str, tuple[str, tuple[str, ...]]] = {
    "train": ("train", ("tensorflow", "tf_keras")),
    "convert": ("convert", ("tensorflow", "tf_keras")),
    "adapt": ("train", ("tensorflow", "tf_keras")),
    "fleet": ("fleet", ("ansible",)),
}


class Parser(argparse.ArgumentParser):
    """Every edgelite parser, the subcommands' too (argparse makes them of the root's class): an
    abbreviated option is an error, never a guess — `--tok SECRET` must not pass as `--token`; the
    description and the examples in the epilog keep their line breaks."""

    def __init__(self, *args, **kwargs):
        kwargs["allow_abbrev"] = False
        kwargs.setdefault("formatter_class", argparse.RawDescriptionHelpFormatter)
        super().__init__(*args, **kwargs)

    def parse_args(self, args=None, namespace=None):
        """As argparse's, but an unknown option is reported by the command it was given to, with that
        command's usage (`edgelite deploy ... -p 9` names deploy, not the top-level COMMAND list)."""
        ns, extras = self.parse_known_args(args, namespace)
        if extras:
            parser = self._command_parser(ns)
            hint = ""
            if {"-p", "--port"} & set(extras) and "--host" in parser._option_string_actions:
                hint = " (an SSH port goes in --host USER@HOST:PORT)"  # ssh's -p, scp's -P: a common reflex
            parser.error(f"unrecognized arguments: {' '.join(extras)}{hint}")
        return ns

    def _command_parser(self, ns: argparse.Namespace) -> argparse.ArgumentParser:
        """The innermost (sub)command parser `ns` was parsed by (edgelite, edgelite fleet, edgelite fleet status)."""
        parser: argparse.ArgumentParser = self
        while True:
            sub = next((a for a in parser._actions if isinstance(a, argparse._SubParsersAction)), None)
            chosen = getattr(ns, sub.dest, None) if sub is not None else None
            if chosen not in (sub.choices if sub is not None else {}):
                return parser
            parser = sub.choices[chosen]


def build_parser() -> argparse.ArgumentParser:
    parser = Parser(
        prog="edgelite",
        description="From a folder of labelled photos to a live camera classifier on a Raspberry Pi or Coral Edge TPU.",
        epilog="Run `edgelite COMMAND --help` for a command's options.",
    )
    parser.add_argument("--version", action="version", version=f"edgelite {__version__}")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    for mod in COMMAND_MODULES:
        mod.register(sub)
    return parser


def main(argv: list[str] | None = None) -> int:
    # TensorFlow's environment (tf-keras, quiet C++ start-up) from its one place, before any command could
    # import TensorFlow; tfenv itself imports nothing heavy
    from edgelite.train.tfenv import set_environment

    set_environment()
    parser = build_parser()
    args = parser.parse_args(argv)
    if not getattr(args, "func", None):
        parser.print_help()
        return 0
    try:
        if args.command in COMMAND_EXTRAS:
            extra, modules = COMMAND_EXTRAS[args.command]
            require_extra(extra, modules)
        rc = args.func(args)
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        return EXIT_INTERRUPTED
    except EdgeliteError as e:
        print(f"edgelite {args.command}: error: {e}", file=sys.stderr)
        return e.exit_code
    return int(rc or 0)


if __name__ == "__main__":
    raise SystemExit(main())
