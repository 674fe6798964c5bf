"""The errors of `edgelite bench`: a bad option, path or data set (a `UsageError`: one line, exit code 2),
and a row that misses `--min-top1` / `--max-p50` (exit code 3, EXIT_REFUSED, for CI on a device).
"""

from __future__ import annotations

from edgelite.errors import EXIT_REFUSED, EdgeliteError, UsageError


class BenchUsageError(UsageError):
    """A bad bench option or input the user can fix (printed as one line by the CLI, exit code 2)."""


class BenchGateFailed(EdgeliteError):
    """A bench row missed --min-top1 or --max-p50 (exit code 3); the table was printed before it."""

    exit_code = EXIT_REFUSED
