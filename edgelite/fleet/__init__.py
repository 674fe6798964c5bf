"""`edgelite fleet`: many devices, driven by Ansible with a role that calls the same device agent as
`edgelite deploy` (edgelite/fleet/ansible/: a playbook, the `edgelite` role, a callback plugin).

`plan` is the controller-side preparation (run once per rollout by the playbook), `runner` starts
ansible-playbook, `rollout` and `status` are the commands. Importing this package imports nothing.
"""
