"""The device side of `edgelite deploy`, `edgelite fleet` and `bench --host`: a stdlib-only agent, JSON protocol.

It runs on the device with the system `python3` (before any venv exists), shipped as ONE zipapp,
`DIR/agent.pyz`, built from this package plus `edgelite/__init__.py`, `edgelite/errors.py`,
`edgelite/manifest.py`, `edgelite/jsonfile.py`, `edgelite/http_address.py` and `edgelite/remote/layout.py`
(the device folder's names) by `edgelite.remote.agent.build_agent`, and reached through
`edgelite.remote.agent.Agent` by `edgelite deploy`, `edgelite fleet` (its Ansible role) and `edgelite bench
--host` (the `*-bench` requests, `bench.py`). It owns everything that must stay true when the workstation
goes away mid-deploy:

* bundles are verified (sha256 of every file against the manifest) before they are accepted, and once the
  device has a trust list (`trusted_signers`, written only by the `trust` request) the manifest's signature
  too: `accept-bundle`, `smoke` and `commit` refuse (exit 10) a bundle no trusted key signed;
* `current` is only ever switched atomically (symlink + rename(2)), and durably: every file published by a
  rename is fsync'ed first and its folder after (`edgelite.jsonfile`), so a power cut at any moment leaves
  the old release or a complete new one (README, "Reliability");
* releases are ordered by the agent's own sequence (`seq` in release.json), never by the device's clock;
* the switch, the (re)start, the health check and the rollback run as ONE detached transaction
  (`commit` with `"detach": true`), so killing the workstation's deploy at any step leaves either the
  previous release serving or the new one verified healthy — never a half-switched device;
* without systemd (containers, the Pi emulator) a small supervisor replaces it: Restart=on-failure with
  a start limit, sd_notify (READY=1, WATCHDOG=1, STATUS=) over a NOTIFY_SOCKET it owns, WatchdogSec, a
  pidfile and a size-rotated log.

Protocol (version 1)
====================

One call = one process: ``python3 DIR/agent.pyz`` reads ONE JSON object on stdin and writes ONE JSON
object (one line) on stdout; progress lines go to stderr; the exit status is 0 or the reply's
`exit_code`. Every request has ``"command"``, and may have:

* ``"dir"`` — the deploy directory (default ``~/edgelite``);
* ``"detach": true`` — run the command in a new session, away from this SSH connection; the reply is
  at once ``{"ok": true, "job": NAME, "pid": N, "follow_s": S}`` (S: how long to follow it before giving up); its progress goes to ``run/NAME.log`` and its reply to
  ``run/NAME.json`` (follow both with `wait`). A `commit` job is named ``commit-<release>``, any other
  ``<command>-<time>-<n>`` unless the request names it (``"job"``).

Every reply has ``"ok"`` and ``"protocol": 1``. A failure is
``{"ok": false, "error": "<one line that says what to do>", "exit_code": N, ...}`` with N from
`edgelite.errors` (2 usage, 4 checksum, 5 smoke test, 6 unhealthy, 8 a device step failed, 10 not signed by a
trusted key, 1 other).

=================  =====================================================  ===========================================
command            request fields (besides "command", "dir")             reply fields (besides "ok")
=================  =====================================================  ===========================================
facts              —                                                      facts: {uname_m, python_version, glibc,
                                                                          disk_free_kb, cameras, systemd, sudo, rsync,
                                                                          dir, current, ...: strings} (the preflight)
trust              signers (allowed-signers text) or remove: true         trusted: [key fingerprints], changed,
                                                                          current_trusted (exit 2: not a list)
verify             path (a bundle folder)                                 problems: [] (exit 4 and the list if any)
prepare-bundle     bundle (id)                                            present, damaged (problems of a bad copy),
                                                                          untrusted (why a copy may not run)
accept-bundle      bundle (id)                                            — (exit 4 with problems; 10: untrusted)
venv               env, wheel, find_links?, constraints?, offline?,      reused, versions, seconds, created,
                   wheels? (resolved, --no-deps), installer? (uv wheel)  installer (uv|pip)
                   extras? (["mqtt"]: edgelite[mqtt])
smoke              env, bundle, format?, timeout? (300 s)                 seconds, label, score, inference_ms (exit 5)
configure          mode (systemd|systemd-user|supervisor|none), user,    mode, unit, user, unit_file
                   unit? ("edgelite")
release            bundle, env, source, http, source_is_file?, format?,  release (the new id)
                   print_every? (30), run_args? (str or list), meta?,
                   token?, mqtt_password? (to the release's 0600 env)
commit             release, health_timeout? (90), no_service?, keep? (3)  release, previous, health, why, unit,
                                                                          log_tail, rolled_back_to, previous_healthy
                                                                          (exit 6 when unhealthy)
rollback           health_timeout? (90)                                   as commit, for `previous` (exit 2: none)
wait               job, offset? (0), timeout? (5 s)                       done, output: [lines], offset, reply (done)
status             —                                                      dir, service, state, current, releases,
                                                                          failed, health, trusted (fingerprints,
                                                                          null: no trust list), clock {device_time,
                                                                          since_boot_s}
logs               lines? (50), follow?                                   lines: [...]; with follow: true the log
                                                                          goes to stderr until the call is killed
previous           —                                                      current, previous
service            action (start|stop)                                    state
uninstall          —                                                      removed (the folder), kept (what it left there)
prepare-bench      —                                                      work (a new temporary folder), install
                                                                          (deployed|path|temporary), edgelite,
                                                                          bundle (the current release's), python
bench              work, targets: [paths], args? ([flags]), data?,        result (the JSON of `edgelite bench ... --json
                   pipeline? (`~/` expanded; the files are in work)      -`), returncode, install, edgelite, work;
                                                                          its progress streams on stderr (exit 8)
clean-bench        work                                                   removed (the folder, or null: it was gone)
mkdirs             paths (folders inside DIR)                             made (the new ones; mode 0755, as mkdir -p)
batch              steps: [requests] (each command once; no detach, no    replies: {command: reply}; the first failure
                   batch; a commit without release takes the batch's      ends it: its exit code, `step`, `replies`
                   release step's id)                                     (one call instead of many: the fleet role)
=================  =====================================================  ===========================================

The supervisor is started by the agent itself (or systemd/nohup) as a plain command line:
``python3 DIR/agent.pyz supervise --dir DIR``.

Layout under DIR (default ~/edgelite; `edgelite.remote.layout`, extended by `layout.Layout`)::

    agent.pyz                this agent
    .edgelite-deploy         the marker written on first deploy: a non-empty folder without it is refused
    bundles/<id>/            verified bundles; <id> = sha256 of the manifest (16 hex)
    bundles/.incoming/<id>/  where the workstation pushes before `accept-bundle` verifies and renames
    wheels/                  the edgelite wheel(s) and, with --offline, every dependency wheel
    venvs/<env>/             `python3 -m venv --system-site-packages` + edgelite; `.ready` when complete
    media/                   --source files pushed from the workstation
    frames/                  low-confidence frames the service keeps (deploy --save-uncertain; --pull-frames)
    releases/<rid>/          release.json (its `seq`: the agent's order) + run (the service's ExecStart);
                             <rid>.failed when unhealthy; .<rid>.partial / .gc-<rid> half written / half removed
    current -> releases/<rid>
    edgelite.service         the systemd unit (written even where there is no systemd)
    service.json             how the service is run here: systemd | systemd-user | supervisor | none
    run/                     supervisor.pid, state.json, notify socket, <job>.{log,json,pid}, venv-<env>.lock
    run/trial                a switch not yet proved healthy (boot id, release, the one before): a release's
                             `run` that finds itself on trial in a later boot puts `current` back (power cut)
    log/edgelite.log         service output under the supervisor (systemd: journald)
    log/deploys.log          one line per switch (1 MB, then deploys.log.1)
    trusted_signers          the trust list (OpenSSH allowed-signers): only bundles signed by a key in it run

This package's `__init__` imports nothing; `__main__` holds the dispatcher (`handle(request) -> reply`).
"""

PROTOCOL = 1

# The request defaults, written once: the agent applies them to a request that leaves a field out, and the
# workstation's plan (`edgelite.deploy.plan`, for `deploy` and `fleet`) and CLI defaults import them.
DEFAULT_HTTP = "127.0.0.1:8080"  # the preview and /healthz address: the device's loopback only
HEALTH_TIMEOUT = 90.0  # seconds for a new release to report frames on /healthz before it is rolled back
PRINT_EVERY = 30  # the service's console line every N results
KEEP = 3  # releases a healthy switch keeps (the newest by sequence; the current one always): `deploy --keep N`
