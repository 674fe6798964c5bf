"""Shared check for the options-declared-once rule: a command's CLI flags and its options dataclass match."""

from __future__ import annotations

import argparse
import dataclasses

from edgelite.cli import build_parser


def subparser(command: str) -> argparse.ArgumentParser:
    sub = next(a for a in build_parser()._actions if a.dest == "command")
    return sub.choices[command]


def flags(command: str) -> dict[str, argparse.Action]:
    """dest -> action of every option and positional of `edgelite COMMAND` (without --help)."""
    return {a.dest: a for a in subparser(command)._actions if a.dest != "help"}


def check_fields_match_flags(command: str, cls: type, *, not_flags: set[str], not_fields: set[str]) -> None:
    """Every field of `cls` is a flag of `command` with the same default, and every flag is a field, except
    the Python-only fields `not_flags` and the flags `not_fields` that are no option of the command."""
    actions = flags(command)
    fields = {f.name: f for f in dataclasses.fields(cls)}
    assert not_flags <= set(fields) and not_fields <= set(actions), (not_flags - set(fields), not_fields - set(actions))
    missing_flag = sorted(set(fields) - set(actions) - not_flags)
    missing_field = sorted(set(actions) - set(fields) - not_fields)
    assert not missing_flag, f"{cls.__name__} fields without an `edgelite {command}` flag: {missing_flag}"
    assert not missing_field, f"`edgelite {command}` flags without a {cls.__name__} field: {missing_field}"
    for name in set(fields) & set(actions):
        f, a = fields[name], actions[name]
        if f.default is not dataclasses.MISSING:  # what the CLI passes when the flag is absent
            assert a.default == f.default, f"--{name.replace('_', '-')} defaults to {a.default!r} in the CLI but " \
                                           f"{cls.__name__}.{name} to {f.default!r}"
