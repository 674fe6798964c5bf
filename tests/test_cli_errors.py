"""How every `edgelite` command fails: one line `edgelite COMMAND: error: ...` and a code from the one
exit-code table (edgelite.errors.EXIT_CODES, also in the README); a missing optional extra names the
pip extra to install; a command module that cannot be imported is a bug and shows its traceback."""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

import pytest

import edgelite.bundle
import edgelite.convert.errors
import edgelite.deploy.errors
import edgelite.device.cli
import edgelite.device.errors
import edgelite.train.errors
from edgelite.cli import main
from edgelite.errors import EXIT_CODES, EdgeliteError, MissingExtra, UsageError

REPO = Path(__file__).resolve().parents[1]
COMMANDS = ("train", "data", "adapt", "convert", "run", "capture", "bench", "sign", "deploy", "fleet", "review")


def _edgelite(tmp_path: Path, *argv, hide: tuple[str, ...] = ()) -> subprocess.CompletedProcess:
    """`python -m edgelite ARGV` in a subprocess where the modules `hide` cannot be imported, as when
    they are not installed (a sitecustomize on PYTHONPATH puts None in sys.modules for each)."""
    site = tmp_path / "site"
    site.mkdir(exist_ok=True)
    (site / "sitecustomize.py").write_text(f"import sys\nsys.modules.update(dict.fromkeys({list(hide)!r}))\n")
    env = {"PATH": "/usr/bin:/bin", "HOME": str(tmp_path), "PYTHONPATH": f"{site}:{REPO}",
           "TF_USE_LEGACY_KERAS": "1", "TF_CPP_MIN_LOG_LEVEL": "2"}
    return subprocess.run([sys.executable, "-m", "edgelite", *map(str, argv)], capture_output=True, text=True,
                          timeout=120, env=env, cwd=tmp_path)


# --------------------------------------------------------------------------- optional extras missing
def test_train_on_a_device_install_says_which_extra_to_install(tmp_path):
    (tmp_path / "photos" / "cat").mkdir(parents=True)
    p = _edgelite(tmp_path, "train", "photos", "--out", "runs/a", hide=("tensorflow", "tf_keras"))
    assert p.returncode == 2, p.stderr
    assert p.stderr.strip() == ("edgelite train: error: tensorflow is not installed: "
                                "pip install 'edgelite[train]'"), p.stderr
    assert not (tmp_path / "runs").exists()


def test_convert_on_a_device_install_says_which_extra_to_install(tmp_path):
    p = _edgelite(tmp_path, "convert", "runs/a", "--out", "bundles/a", hide=("tensorflow",))
    assert p.returncode == 2, p.stderr
    assert p.stderr.strip() == ("edgelite convert: error: tensorflow is not installed: "
                                "pip install 'edgelite[convert]'"), p.stderr


def test_help_lists_every_command_on_a_device_install(tmp_path):
    """Without TensorFlow every command is still listed (all ship in one wheel); `run --help` works."""
    p = _edgelite(tmp_path, "--help", hide=("tensorflow", "tf_keras", "tensorflow_model_optimization", "tf2onnx"))
    assert p.returncode == 0, p.stderr
    listed = re.findall(r"^    (\w+)\s", p.stdout, re.M)
    assert listed == list(COMMANDS), p.stdout
    p = _edgelite(tmp_path, "run", "--help", hide=("tensorflow", "tf_keras"))
    assert p.returncode == 0 and "--source" in p.stdout, p.stderr


def test_a_command_module_that_fails_to_import_is_a_traceback_not_a_missing_command(tmp_path):
    p = _edgelite(tmp_path, "--help", hide=("edgelite.bench.cli",))
    assert p.returncode == 1
    assert "Traceback" in p.stderr and "edgelite.bench.cli" in p.stderr, p.stderr


# ------------------------------------------------------------------------------- one line, one code
@pytest.mark.parametrize("error, code", [
    (UsageError("--top-k must be at least 1"), 2),
    (edgelite.device.errors.RunError("--token is required off loopback"), 2),
    (edgelite.device.errors.ModelLoadError("model_int8.tflite is corrupt"), 2),
    (edgelite.bundle.BundleError("bundle b does not exist"), 2),
    (MissingExtra("tf2onnx", "onnx", what="--formats onnx"), 2),
    (edgelite.convert.errors.FormatsFailed("1 format(s) failed: onnx"), 1),
    (edgelite.convert.errors.GateFailed("int8 lost 4.0 points"), 3),
    (edgelite.deploy.errors.DeployError("ssh: connection refused", 7), 7),
    (edgelite.device.errors.SourceFailed("camera 0 stopped"), 75),
])
def test_an_edgelite_error_is_one_line_with_its_exit_code(monkeypatch, capsys, error, code):
    def fail(args):
        raise error

    monkeypatch.setattr(edgelite.device.cli, "run_command", fail)
    assert main(["run", "bundles/x"]) == code
    captured = capsys.readouterr()
    assert captured.err == f"edgelite run: error: {error}\n" and captured.out == ""
    assert code in EXIT_CODES


def test_any_other_exception_is_a_bug_and_keeps_its_traceback(monkeypatch):
    def fail(args):
        raise ValueError("a bug")

    monkeypatch.setattr(edgelite.device.cli, "run_command", fail)
    with pytest.raises(ValueError, match="a bug"):
        main(["run", "bundles/x"])


def test_ctrl_c_exits_130(monkeypatch, capsys):
    def interrupted(args):
        raise KeyboardInterrupt

    monkeypatch.setattr(edgelite.device.cli, "run_command", interrupted)
    assert main(["run", "bundles/x"]) == 130
    assert capsys.readouterr().err == "interrupted\n"


def test_a_run_error_reaches_the_user_as_itself(tmp_path, capsys):
    """`edgelite run` no longer re-wraps: the loop's own error, one line, exit 2."""
    assert main(["run", str(tmp_path / "nope"), "--source", "0"]) == 2
    err = capsys.readouterr().err
    assert err.startswith("edgelite run: error: bundle ") and "does not exist" in err and err.count("\n") == 1


# ------------------------------------------------------------------------------- the one table
def _subclasses(cls: type) -> list[type]:
    return [c for sub in cls.__subclasses__() for c in (sub, *_subclasses(sub))]


def test_every_error_class_exits_with_a_code_from_the_table():
    errors = [c for c in _subclasses(EdgeliteError) if c.__module__.startswith("edgelite.")]
    assert {"RunError", "ConvertError", "GateFailed", "DataError", "BundleError", "DeployError"} <= {
        c.__name__ for c in errors}
    unknown = [f"{c.__module__}.{c.__name__}: {c.exit_code}" for c in errors if c.exit_code not in EXIT_CODES]
    assert not unknown, unknown


def test_the_readme_exit_code_table_is_edgelite_errors_exit_codes():
    text = (REPO / "README.md").read_text()
    section = text.split("\n## Exit codes\n", 1)[1].split("\n## ", 1)[0]
    rows = dict(re.findall(r"^\| (\d+) \| (.+?) \|$", section, re.M))
    assert {int(code): meaning for code, meaning in rows.items()} == EXIT_CODES


def test_an_unknown_option_is_reported_by_its_command_with_its_usage(capsys):
    """Issue 25 (smaller): `edgelite deploy bundles/demo --host pi@h -p 9` printed the top-level usage
    (`edgelite [-h] [--version] COMMAND ...`), not deploy's; and ssh's -p reflex gets the fix."""
    from edgelite.cli import main

    with pytest.raises(SystemExit) as e:
        main(["deploy", "bundles/demo", "--host", "pi@h", "-p", "9"])
    err = capsys.readouterr().err
    assert e.value.code == 2 and err.startswith("usage: edgelite deploy ")
    assert err.rstrip().endswith("edgelite deploy: error: unrecognized arguments: -p 9 "
                                 "(an SSH port goes in --host USER@HOST:PORT)")
    with pytest.raises(SystemExit):
        main(["fleet", "status", "-i", "hosts.ini", "--zzz"])
    assert "edgelite fleet status: error: unrecognized arguments: --zzz" in capsys.readouterr().err


def test_a_typo_in_a_path_gets_did_you_mean(tmp_path, monkeypatch, capsys):
    """Issue 25 (smaller): `edgelite run bundles/dmeo` said "make one with `edgelite convert ...`" beside an
    existing bundles/demo; every "does not exist" now offers the close match first."""
    from edgelite.cli import main

    (tmp_path / "bundles" / "demo").mkdir(parents=True)
    (tmp_path / "runs" / "demo").mkdir(parents=True)
    monkeypatch.chdir(tmp_path)
    for argv, line in (
            (["run", "bundles/dmeo", "--source", "heldout"], "edgelite run: error: bundle bundles/dmeo does not exist; "
                                                             "did you mean bundles/demo?"),
            (["bench", "bundels/demo"], "edgelite bench: error: bundels/demo does not exist; did you mean bundles/demo?"),
            (["run", "bundles/nothing-like-it", "--source", "0"], "make one with `edgelite convert RUN_DIR --out "
                                                                  "bundles/nothing-like-it`")):
        assert main(argv) == 2
        err = capsys.readouterr().err
        assert line in err and err.count("\n") == 1, err
