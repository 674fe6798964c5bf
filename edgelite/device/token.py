"""Secrets from a file or the environment, never only from a command line (`ps` shows argv to every user on
the machine): the preview token from `--token-file FILE` (its first line), else ``$EDGELITE_TOKEN``; `edgelite
deploy`'s MQTT password the same way (`--mqtt-password-file`, ``$EDGELITE_MQTT_PASSWORD``). Standard library
only; `edgelite run` and `edgelite deploy` read them the same way.

    >>> import os; os.environ.pop(TOKEN_ENV, None) and None; read_token(None, error=ValueError) is None
    True
"""

from __future__ import annotations

import os
from pathlib import Path

TOKEN_ENV = "EDGELITE_TOKEN"
MQTT_PASSWORD_ENV = "EDGELITE_MQTT_PASSWORD"  # `edgelite run --mqtt` reads the broker's password here


def read_token(token_file: str | None, *, error: type[Exception]) -> str | None:
    """The first line of `token_file` (surrounding blanks removed), else $EDGELITE_TOKEN, else None; an
    unreadable or empty file is `error` in one line."""
    return read_secret(token_file, env=TOKEN_ENV, option="--token-file", what="token", error=error)


def read_secret(path: str | None, *, env: str, option: str, what: str, error: type[Exception]) -> str | None:
    """The first line of the file `path` (given as `option`; surrounding blanks removed), else $`env`, else
    None; an unreadable or empty file is `error` in one line that names `what` belongs on its first line."""
    if not path:
        return os.environ.get(env) or None
    try:
        lines = Path(path).expanduser().read_text(encoding="utf-8").splitlines()
    except (OSError, UnicodeDecodeError) as e:
        raise error(f"{option} {path}: cannot read it ({getattr(e, 'strerror', None) or e}); "
                    f"give a file whose first line is the {what}") from None
    secret = lines[0].strip() if lines else ""
    if not secret:
        raise error(f"{option} {path} is empty: put the {what} on its first line")
    return secret
