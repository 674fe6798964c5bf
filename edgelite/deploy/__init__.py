"""Host side of `edgelite deploy` (see the README's Architecture section): preflight, package, push,
install, smoke test, switch, health check and rollback over SSH. `agent/` is the device side (standard
library only, shipped as one zipapp; its docstring is the JSON protocol that `deploy` and `fleet` speak).

Importing this package imports nothing: `edgelite.deploy.deploy` is loaded when the command runs.
"""
