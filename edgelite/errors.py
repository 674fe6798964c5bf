"""Every error a user can cause, and the one exit-code table of every `edgelite` command.

Standard library only: the device agent (a zipapp with no edgelite install behind it) ships this
module too. `edgelite.cli.main` catches `EdgeliteError` and nothing else: it prints the message as
one line (``edgelite COMMAND: error: <message>``) and exits with the error's ``exit_code``. No error
is ever recognised by its message text.

    >>> issubclass(UsageError, EdgeliteError), UsageError("x").exit_code
    (True, 2)
"""

from __future__ import annotations

# ------------------------------------------------------------------------------ exit codes (README)
EXIT_OK = 0
EXIT_FAILED = 1  # partly done: some formats failed to export (the bundle holds the others)
EXIT_USAGE = 2  # a bad option, path or input the user can fix
EXIT_REFUSED = 3  # a check refused: convert --max-drop gate, bench --min-top1/--max-p50, deploy preflight
EXIT_CHECKSUM = 4  # a file does not match its manifest (workstation or device)
EXIT_SMOKE = 5  # the new bundle failed its one inference on the device; nothing was switched
EXIT_UNHEALTHY = 6  # the new release did not become healthy; the previous one was put back
EXIT_CONNECT = 7  # SSH could not connect or authenticate
EXIT_REMOTE = 8  # a step on the device failed (pip install, the bench there, ...)
EXIT_FLEET = 9  # fleet: some hosts did not get the release (refused, failed, rolled back, unreachable, not started)
EXIT_UNTRUSTED = 10  # the bundle is not signed by a key the device (or --allowed-signers) trusts
EXIT_SOURCE_LOST = 75  # run: the camera stayed lost after --max-reconnects (sysexits EX_TEMPFAIL)
EXIT_INTERRUPTED = 130  # Ctrl-C

EXIT_CODES: dict[int, str] = {
    EXIT_OK: "success",
    EXIT_FAILED: "partly failed: convert wrote the bundle without the formats that failed",
    EXIT_USAGE: "usage: a bad option, path, image, model file or bundle, or an optional extra not installed",
    EXIT_REFUSED: "refused by a check: convert --max-drop, bench --min-top1/--max-p50, deploy preflight",
    EXIT_CHECKSUM: "checksum: a bundle file does not match its manifest",
    EXIT_SMOKE: "deploy: the smoke test failed on the device; nothing was switched",
    EXIT_UNHEALTHY: "deploy: the new release was not healthy; the previous one serves again",
    EXIT_CONNECT: "SSH could not connect or authenticate",
    EXIT_REMOTE: "a step on the device failed (install, bench)",
    EXIT_FLEET: "fleet: some hosts did not get the release; the summary says which release each host runs",
    EXIT_UNTRUSTED: "untrusted: the bundle is not signed by a key the device trusts; the previous release keeps serving",
    EXIT_SOURCE_LOST: ("run: the live source did not open (from a terminal: at once, with the cause) or stayed "
                       "lost after --max-reconnects (systemd restarts it)"),
    EXIT_INTERRUPTED: "interrupted (Ctrl-C)",
}


class EdgeliteError(Exception):
    """An error the user can act on: one line that says what to do, and an exit code from the table."""

    exit_code: int = EXIT_USAGE

    def __init__(self, message: str = "", exit_code: int | None = None):
        super().__init__(message)
        if exit_code is not None:
            self.exit_code = exit_code


class UsageError(EdgeliteError):
    """A bad option or argument (exit code 2)."""


class MissingExtra(UsageError):
    """A command needs an optional dependency that this install lacks (exit code 2).

    The core install is the device runtime only; the message names the pip extra to install.

        >>> str(MissingExtra("tensorflow", "train"))
        "tensorflow is not installed: pip install 'edgelite[train]'"
        >>> str(MissingExtra("tf2onnx", "onnx", what="--formats onnx"))
        "--formats onnx needs tf2onnx, which is not installed: pip install 'edgelite[onnx]'"
    """

    def __init__(self, module: str, extra: str, what: str = ""):
        hint = f"pip install 'edgelite[{extra}]'"
        super().__init__(f"{what} needs {module}, which is not installed: {hint}" if what
                         else f"{module} is not installed: {hint}")
        self.module = module
        self.extra = extra


def require_extra(extra: str, modules: tuple[str, ...] | list[str], what: str = "") -> None:
    """Raise MissingExtra for the first of the top-level `modules` that is not installed.

    Looks the modules up without importing them, so a check costs nothing on a device install.
    """
    import importlib.util

    for module in modules:
        if importlib.util.find_spec(module) is None:
            raise MissingExtra(module, extra, what)


def first_line(error: BaseException | str, limit: int = 200) -> str:
    """The first line of an error's message (at most `limit` characters), for one-line user messages.

    An exception without a message gives its type name: a runtime's bare ``RuntimeError()`` still says
    something.

    >>> first_line(ValueError("truncated file\\n  at offset 12")), first_line(OSError())
    ('truncated file', 'OSError')
    """
    text = str(error).strip()
    if text:
        return text.splitlines()[0].strip()[:limit]
    return type(error).__name__ if isinstance(error, BaseException) else ""
