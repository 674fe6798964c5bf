"""Package: the edgelite wheel built from this checkout, and (for --offline) the device's dependency wheels.

Both are cached under ~/.cache/edgelite (`edgelite.remote.agent.cache_dir`, which also holds the agent's
zipapp): the wheel by a hash of the source tree, the wheelhouse by platform + Python + the pinned versions,
so a re-deploy builds and downloads nothing. The device's core install is the runtime only: numpy,
opencv-python-headless, ai-edge-litert, pinned by the checkout's constraints.txt when there is one.
"""

from __future__ import annotations

import hashlib
import os
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

from edgelite.deploy.errors import EXIT_USAGE, DeployError
from edgelite.remote.agent import cache_dir, tree_digest

#: the device runtime (pyproject's core dependencies); the wheelhouse holds these and what they pull in
CORE_REQUIREMENTS = ["numpy", "opencv-python-headless", "ai-edge-litert"]


def project_root() -> Path | None:
    """The checkout edgelite is imported from (an editable install), or None for an installed wheel."""
    import edgelite

    root = Path(edgelite.__file__).resolve().parent.parent
    return root if (root / "pyproject.toml").is_file() else None


def constraints_file() -> Path | None:
    root = project_root()
    return root / "constraints.txt" if root and (root / "constraints.txt").is_file() else None


def source_hash(root: Path) -> str:
    """sha256 over pyproject.toml and every file of the package (names and bytes)."""
    files = [root / "pyproject.toml"] + sorted(
        p for p in (root / "edgelite").rglob("*") if p.is_file() and "__pycache__" not in p.parts
        and p.suffix not in (".pyc", ".pyo"))
    return tree_digest(root, files)


def build_wheel(wheel: str | os.PathLike | None = None) -> Path:
    """The edgelite wheel to install on the device: `wheel` if given, else built (and cached) from the checkout."""
    if wheel:
        p = Path(wheel).expanduser()
        if not (p.is_file() and p.name.startswith("edgelite-") and p.suffix == ".whl"):
            raise DeployError(f"--wheel {wheel}: not an edgelite-*.whl file", EXIT_USAGE)
        return p
    root = project_root()
    if root is None:
        raise DeployError("edgelite is not installed from a source checkout, so there is no wheel to build; "
                          "pass --wheel edgelite-X.whl", EXIT_USAGE)
    out = cache_dir() / "wheels" / source_hash(root)
    found = sorted(out.glob("edgelite-*.whl")) if out.is_dir() else []
    if found:
        return found[0]
    with tempfile.TemporaryDirectory(prefix="edgelite-wheel-") as tmp:
        # build from a copy: setuptools writes build/ and *.egg-info into the tree it builds
        src = Path(tmp) / "src"
        shutil.copytree(root / "edgelite", src / "edgelite", ignore=shutil.ignore_patterns("__pycache__", "*.pyc"))
        for name in ("pyproject.toml", "README.md", "LICENSE", "setup.cfg", "MANIFEST.in"):
            if (root / name).is_file():
                shutil.copy2(root / name, src / name)
        _license_for_old_setuptools(src / "pyproject.toml")
        # --no-build-isolation: setuptools from this environment, no index needed for the build
        cmd = [sys.executable, "-m", "pip", "wheel", "--no-deps", "--no-build-isolation", "-q", "-w", tmp, str(src)]
        r = subprocess.run(cmd, capture_output=True, text=True)
        if r.returncode != 0:
            cmd.remove("--no-build-isolation")
            r = subprocess.run(cmd, capture_output=True, text=True)
        if r.returncode != 0:
            raise DeployError(f"building the edgelite wheel failed: {(r.stderr or r.stdout).strip()[-400:]}", EXIT_USAGE)
        built = sorted(Path(tmp).glob("edgelite-*.whl"))
        if not built:
            raise DeployError("pip wheel produced no edgelite wheel", EXIT_USAGE)
        out.mkdir(parents=True, exist_ok=True)
        dest = out / built[0].name
        shutil.copy2(built[0], dest.with_suffix(".tmp"))
        os.replace(dest.with_suffix(".tmp"), dest)
    return dest


def extra_requirements(wheel: Path, extras: tuple[str, ...] | list[str]) -> list[str]:
    """The requirements edgelite's `extras` add (``paho-mqtt>=2.0`` for `mqtt`), read from the wheel's own
    metadata (pyproject's optional-dependencies), so the wheelhouse holds what that wheel asks for.

    A wheel without one of the extras (an old --wheel) is a DeployError in one line.
    """
    import re
    import zipfile
    from email.parser import Parser

    if not extras:
        return []
    try:
        with zipfile.ZipFile(wheel) as z:
            name = next(n for n in z.namelist() if n.endswith(".dist-info/METADATA"))
            meta = Parser().parsestr(z.read(name).decode("utf-8"))
    except (OSError, StopIteration, zipfile.BadZipFile, UnicodeDecodeError) as e:
        raise DeployError(f"{wheel}: cannot read its metadata ({e})", EXIT_USAGE) from None
    out, found = [], set()
    for line in meta.get_all("Requires-Dist") or []:
        req, _, marker = line.partition(";")
        m = re.search(r"""extra\s*==\s*["']([^"']+)["']""", marker)
        if m and m.group(1) in extras:
            found.add(m.group(1))
            out.append(req.strip())
    missing = [e for e in extras if e not in found]
    if missing:
        raise DeployError(f"{wheel.name} has no [{','.join(missing)}] extra: deploy a wheel built from a current "
                          "checkout (leave out --wheel to build one)", EXIT_USAGE)
    return out


def wheelhouse(platform_tag: str, python: str, *, requirements: list[str] | None = None,
               constraints: Path | None = None, log=print) -> Path:
    """Download (once) every wheel the device needs for `platform_tag` (manylinux_2_36_aarch64) and `python`.

    The device's own glibc is the tag; every older manylinux tag is passed too, since
    `pip download --platform` does not expand `manylinux_2_36` to the 2_17 ... 2_35 wheels it can run.
    """
    reqs = requirements or CORE_REQUIREMENTS
    pins = constraints.read_bytes() if constraints else b""
    key = hashlib.sha256(b"\0".join([platform_tag.encode(), python.encode(), *map(str.encode, reqs), pins])).hexdigest()[:12]
    major_minor = python.replace(".", "")
    out = cache_dir() / "wheelhouse" / f"cp{major_minor}-{platform_tag}-{key}"
    stamp = out / ".complete"
    if stamp.exists():
        return out
    out.mkdir(parents=True, exist_ok=True)
    cmd = [sys.executable, "-m", "pip", "download", "--disable-pip-version-check", "-q", "-d", str(out),
           "--only-binary=:all:", *[a for t in compatible_platforms(platform_tag) for a in ("--platform", t)],
           "--python-version", python,
           "--implementation", "cp", *reqs]
    if constraints:
        cmd += ["-c", str(constraints)]
    log(f"  pip download {' '.join(reqs)} for cp{major_minor} {platform_tag} (once; cached in {out})")
    r = subprocess.run(cmd, capture_output=True, text=True)
    if r.returncode != 0:
        raise DeployError(f"downloading the device's wheels ({platform_tag}, Python {python}) failed: "
                          f"{(r.stderr or r.stdout).strip()[-500:]}", EXIT_USAGE)
    stamp.write_text(" ".join(reqs) + "\n")
    return out


#: the device's installer for --offline: uv, a native binary from its PyPI wheel (aarch64 and x86_64)
INSTALLER = "uv"


def installer_wheel(platform_tag: str, constraints: Path | None = None, log=print) -> Path | None:
    """The uv wheel for the device's platform (downloaded once, cached), or None when it cannot be had.

    An emulated (or a real Pi's) CPython spends most of a `pip install` in pip itself: starting it, resolving,
    byte-compiling. uv is native code and, given the pre-resolved wheel list, does no resolving at all.
    The agent takes the binary out of the wheel with zipfile (nothing is installed to run it).
    """
    pins = constraints.read_bytes() if constraints else b""
    key = hashlib.sha256(platform_tag.encode() + b"\0" + pins).hexdigest()[:12]
    out = cache_dir() / "installer" / f"{INSTALLER}-{platform_tag}-{key}"
    found = sorted(out.glob(f"{INSTALLER}-*.whl")) if out.is_dir() else []
    if found:
        return found[0]
    cmd = [sys.executable, "-m", "pip", "download", "--disable-pip-version-check", "-q", "-d", str(out), "--no-deps",
           "--only-binary=:all:", *[a for t in compatible_platforms(platform_tag) for a in ("--platform", t)], INSTALLER]
    if constraints:
        cmd += ["-c", str(constraints)]
    r = subprocess.run(cmd, capture_output=True, text=True)
    found = sorted(out.glob(f"{INSTALLER}-*.whl")) if out.is_dir() else []
    if r.returncode != 0 or not found:
        log(f"  no {INSTALLER} wheel for {platform_tag} ({(r.stderr or r.stdout).strip()[-160:]}); the device uses pip")
        return None
    return found[0]


def install_list(house: Path, keep_system_numpy: bool) -> list[str]:
    """The wheel files (names in the wheelhouse) the device installs --no-deps: the resolved set that `pip
    download` left in `house`, less numpy when the venv uses the device's own (`sysnumpy`)."""
    return sorted(p.name for p in house.glob("*.whl")
                  if not (keep_system_numpy and p.name.split("-", 1)[0].lower() == "numpy"))


def pushed_house(house: Path, names: list[str]) -> Path:
    """The folder the device gets: `house` itself, or (when the install list leaves wheels out, e.g. numpy
    where apt's is kept) a sibling holding only `names` as hard links, so nothing unused is sent."""
    if set(names) == {p.name for p in house.glob("*.whl")}:
        return house
    out = house.with_name(f"{house.name}-{hashlib.sha256(' '.join(sorted(names)).encode()).hexdigest()[:8]}")
    if (out / ".complete").exists():
        return out
    out.mkdir(parents=True, exist_ok=True)
    for n in names:
        if not (out / n).exists():
            try:
                os.link(house / n, out / n)
            except OSError:
                shutil.copy2(house / n, out / n)
    (out / ".complete").write_text("\n".join(names) + "\n")
    return out


def compatible_platforms(platform_tag: str) -> list[str]:
    """manylinux_2_36_aarch64 -> [manylinux_2_36_aarch64, manylinux_2_35_aarch64, ..., manylinux2014_aarch64]."""
    import re

    m = re.fullmatch(r"manylinux_(\d+)_(\d+)_(\w+)", platform_tag)
    if not m:
        return [platform_tag]
    major, minor, arch = int(m.group(1)), int(m.group(2)), m.group(3)
    tags = [f"manylinux_{major}_{v}_{arch}" for v in range(minor, 16, -1)] + [f"manylinux2014_{arch}"]
    if arch in ("x86_64", "i686"):
        tags += [f"manylinux2010_{arch}", f"manylinux1_{arch}"]
    return tags


def files_digest(paths: list[Path]) -> str:
    """A short id for a set of files (names and bytes): the device venv is keyed by it."""
    h = hashlib.sha256()
    for p in sorted(paths, key=lambda p: p.name):
        h.update(p.name.encode() + b"\0")
        with open(p, "rb") as f:
            while b := f.read(1 << 20):
                h.update(b)
    return h.hexdigest()[:12]


def venv_id(wheel: Path, deps: list[Path], constraints: Path | None, arch: str, python_tag: str, offline: bool,
            extras: tuple[str, ...] = ()) -> str:
    """The device venv's id: everything installed into it (a new wheel set, or edgelite's extras, is a new
    venv), shared by `edgelite deploy` and `edgelite fleet` so either reuses what the other built."""
    digest = files_digest([wheel, *deps, *([constraints] if constraints else [])])
    with_extras = f" [{','.join(sorted(extras))}]" if extras else ""
    return hashlib.sha256(f"{digest} {arch} {python_tag} {offline}{with_extras}".encode()).hexdigest()[:12]


#: the PEP 639 form pyproject.toml uses, and the table form setuptools before 77 requires
SPDX_LICENSE, TABLE_LICENSE = 'license = "Apache-2.0"', 'license = { text = "Apache-2.0" }'


def _license_for_old_setuptools(pyproject: Path) -> None:
    """An environment made before `setuptools>=77` (a venv's bundled 65) rejects the SPDX `license` string,
    and the build runs without isolation (offline): give that setuptools the table form, in the copy only."""
    try:
        from importlib.metadata import version

        major = int(version("setuptools").split(".")[0])
    except Exception:  # no setuptools here: pip's isolated build (the fallback) brings a current one
        return
    if major < 77 and pyproject.is_file():
        pyproject.write_text(pyproject.read_text().replace(SPDX_LICENSE, TABLE_LICENSE))
