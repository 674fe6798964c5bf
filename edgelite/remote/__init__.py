"""The one way to reach a device: every `edgelite` command that talks to a Pi goes through here.

    target.py      `user@host[:port]`, `ssh://...`, `user@[IPv6]:port` -> Target
    ssh.py         Remote: the only module that starts ssh / rsync / scp (one host-key policy,
                   identity, known_hosts, extra -o options, one shared ControlMaster connection)
    connector.py   Connector: the interface (run / put / push / get) every transport implements
    connection.py  Connection (what to reach and how) and the one argparse group of SSH flags
    layout.py      the device folder under DIR (default ~/edgelite); stdlib only, the agent ships it
    agent.py       the device agent's workstation side: its zipapp built (from edgelite/deploy/agent/'s
                   files, never imported here), pushed, and called (Agent: one JSON request, one reply)
    errors.py      RemoteError (exit codes EXIT_CONNECT / EXIT_REMOTE / EXIT_USAGE)

Nothing is imported here, so the device agent can ship `layout.py` without the rest.
"""
