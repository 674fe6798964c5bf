"""The preview token from a file or the environment, never only from a command line (`ps` shows argv to every
user on the machine): `--token-file FILE` (its first line), else ``$EDGELITE_TOKEN``. Standard library only;
`edgelite run` and `edgelite deploy` read it the same way.

    >>> import os; os.environ.pop(TOKEN_ENV, None) and None; read_token(None, error=ValueError) is None
    True
"""

from __future__ import annotations

import os
from pathlib import Path

TOKEN_ENV = "EDGELITE_TOKEN"


def read_token(token_file: str | None, *, error: type[Exception]) -> str | None:
    """The first line of `token_file` (surrounding blanks removed), else $EDGELITE_TOKEN, else None; an
    unreadable or empty file is `error` in one line."""
    if not token_file:
        return os.environ.get(TOKEN_ENV) or None
    try:
        lines = Path(token_file).expanduser().read_text(encoding="utf-8").splitlines()
    except (OSError, UnicodeDecodeError) as e:
        raise error(f"--token-file {token_file}: cannot read it ({getattr(e, 'strerror', None) or e}); "
                    "give a file whose first line is the token") from None
    token = lines[0].strip() if lines else ""
    if not token:
        raise error(f"--token-file {token_file} is empty: put the token on its first line")
    return token
