"""Host side of `edgelite deploy` (see DESIGN.md): preflight, package, push, install, smoke test, switch,
health check and rollback over SSH. `agent.py` is the device side (standard library only).

Importing this package imports nothing: `edgelite.deploy.deploy` is loaded when the command runs.
"""
