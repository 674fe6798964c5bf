"""What the workstation builds for a deploy, once: the checked bundle, the wheel, the pins and (--offline) a
wheelhouse per device platform; `Builder.for_device` hands the plan one device's files. (The agent is
pushed before the plan exists: the preflight asks it for the device's facts.)

Shared by `edgelite deploy` (one device) and `edgelite fleet` (every host of a rollout: the wheel and the
pins are built once, a wheelhouse once per platform and Python).
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Callable
from pathlib import Path

from edgelite.deploy.errors import EXIT_USAGE, DeployError
from edgelite.deploy.plan import Artifacts, BundleInfo
from edgelite.deploy.preflight import Facts


def checked_bundle(path: str | Path, *, verify: bool = True) -> BundleInfo:
    """The bundle at `path` after verifying every model file here (`verify`); refuses a corrupt bundle
    (a ChecksumError keeps its exit code 4). `verify=False` reads the manifest only: for a bundle the
    caller verified already (`edgelite fleet deploy` checks it before Ansible starts the plan)."""
    from edgelite.bundle import MANIFEST, Bundle, BundleError

    path = Path(path).expanduser().resolve()
    try:
        b = Bundle.load(path)
        if verify:
            b.verify()
    except BundleError as e:
        raise DeployError(f"refusing to deploy {path}: {e}", e.exit_code) from None
    if not b.available():
        raise DeployError(f"refusing to deploy {path}: it has no usable model", EXIT_USAGE)
    manifest_bytes = (path / MANIFEST).read_bytes()
    return BundleInfo(hashlib.sha256(manifest_bytes).hexdigest()[:16], path, json.loads(manifest_bytes))


class Builder:
    """The wheel and the pins, built (or found in the cache) once; wheelhouses per platform."""

    def __init__(self, offline: bool, wheel: str | None = None, log: Callable[[str], None] = print):
        from edgelite.deploy import package

        self.package, self.offline, self.log = package, offline, log
        self.wheel = package.build_wheel(wheel or None)
        self.constraints = package.constraints_file()
        self.houses: dict[tuple, Path] = {}
        self.installers: dict[tuple, Path | None] = {}

    def for_device(self, facts: Facts, extras: tuple[str, ...] = ()) -> Artifacts:
        """This device's files: apt's numpy stays the venv's numpy (picamera2 & co. are built on it); with
        --offline the resolved wheel list (less that numpy) and uv's wheel to install it with. `extras`
        (`plan.extras_for`: mqtt for --mqtt) go into the venv too, and into the wheelhouse."""
        from edgelite.deploy import sysnumpy

        pkg = self.package
        cons = sysnumpy.device_constraints(self.constraints, facts.get("system_numpy"), pkg.cache_dir())
        house, deps, wheels, installer = None, [], None, None
        extras = tuple(sorted(extras))
        reqs = pkg.CORE_REQUIREMENTS + pkg.extra_requirements(self.wheel, extras)  # refuses a wheel without them
        if self.offline:
            key = (facts.platform_tag(), facts.python_tag(), cons, tuple(reqs))
            if key not in self.houses:
                self.houses[key] = pkg.wheelhouse(*key[:2], requirements=reqs, constraints=cons, log=self.log)
            wheels = tuple(pkg.install_list(self.houses[key], keep_system_numpy=cons != self.constraints))
            house = pkg.pushed_house(self.houses[key], list(wheels))
            deps = sorted(house.glob("*.whl"))
            ikey = (facts.platform_tag(), cons)
            if ikey not in self.installers:
                self.installers[ikey] = pkg.installer_wheel(facts.platform_tag(), cons, log=self.log)
            installer = self.installers[ikey]
        # the device venv is keyed by everything installed into it: a new wheel set, a new venv
        env = pkg.venv_id(self.wheel, deps + ([installer] if installer else []), cons, facts.arch, facts.python_tag(),
                          self.offline, extras)
        return Artifacts(wheel=self.wheel, constraints=cons, house=house, env=env, wheels=wheels, installer=installer,
                         extras=extras)
