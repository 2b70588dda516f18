"""A role's secret changes on the primary while new sessions keep coming through Pgpool-II.

Pgpool-II opens a session on every backend for each new client and fails the login when the primary
and a standby ask for different authentication methods. The method follows the stored secret (an md5
rule with a SCRAM secret asks for SCRAM), so every switch of webadmin's secret between md5 and SCRAM
(the re-hash of the require stage, the md5 secrets uninstall gives back) is a moment where the primary
and the standby could disagree for as long as the standby takes to replay it. The agent commits those
changes so that the standby applies them before the primary's logins see them.

The test switches webadmin's secret back and forth several times (``disable --stage require`` and
``enable --stage require`` in the cluster order) while a client opens a new connection through
Pgpool-II every few milliseconds. The standby applies commits with a delay
(``recovery_min_apply_delay``, 1.5 s), so a primary whose logins saw a secret before the standby has
it would show the client a 1.5 s outage at every switch. No outage may come near that; what remains
(the moment between the standby's apply and the primary learning of it, about 0.1 s on this test
host) is documented in docs/agent-cli.md.
"""

from __future__ import annotations

import json
import subprocess
from pathlib import Path

import pytest
from hardening_helpers import enable_pg_cluster, issue_pg_certificates
from harness import RELEASES, exec_argv, sim_env, wait_for

LOOP_SRC = Path(__file__).with_name("pg_client_loop.py")
LOOP, STOP, READY = "/tmp/ss-loop.py", "/tmp/ss-loop.stop", "/tmp/ss-loop.ready"
SWITCHES = 4
APPLY_DELAY_MS = 1500
APPLY_DELAY = f"{APPLY_DELAY_MS}ms"
SYNCHRONOUS = "every streaming standby applied it first"


@pytest.fixture(scope="module", params=RELEASES)
def env(request, engine):
    for e in sim_env("pg-cluster", request.param, "ss"):
        issue_pg_certificates(e)
        enable_pg_cluster(e)
        rc, out = e.exec("standby", ["runuser", "-u", "postgres", "--", "psql", "-h", "/var/run/postgresql", "-XAtq",
                                     "-c", f"ALTER SYSTEM SET recovery_min_apply_delay = '{APPLY_DELAY}'",
                                     "-c", "SELECT pg_reload_conf()"])
        assert rc == 0, out
        yield e


def start_loop(env) -> subprocess.Popen:
    subprocess.run(["docker", "cp", str(LOOP_SRC), f"{env.c['client']}:{LOOP}"], check=True, capture_output=True)
    env.exec("client", ["rm", "-f", STOP, READY])
    conninfo = f"host={env.host['pgpool']} user=webadmin dbname=postgres sslmode=require connect_timeout=5"
    argv = exec_argv(env.c["client"], ["python3", LOOP, "--mode", "fresh", "--conninfo", conninfo, "--interval",
                                       "0.005", "--deadline", "900", "--stop-file", STOP, "--ready-file", READY],
                     env={"PGPASSWORD": env.pw["webadmin"]}, stdin=False)
    proc = subprocess.Popen(argv, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    wait_for(lambda: proc.poll() is None and env.exec("client", ["test", "-e", READY])[0] == 0, 60,
             "the first answer through Pgpool-II")
    return proc


def stop_loop(env, proc: subprocess.Popen) -> dict:
    env.exec("client", ["touch", STOP])
    out, err = proc.communicate(timeout=120)
    assert proc.returncode == 0, err.decode()
    return json.loads(out.decode().strip().splitlines()[-1])


def test_new_sessions_through_pgpool_never_fail_while_secrets_switch(env):
    require = ("--stage", "require", "--no-client-cert-address", env.ip["pgpool"])
    proc = start_loop(env)
    ways = []
    try:
        for _ in range(SWITCHES):
            env.agent_json("standby", "disable", "--role", "postgres", "--stage", "require")
            back = env.agent_json("primary", "disable", "--role", "postgres", "--stage", "require")
            assert "webadmin" in back["secrets_restored"], back
            again = env.agent_json("primary", "enable", "--role", "postgres", *require, passwords=True)
            assert "webadmin" in again["rehashed"], again
            env.agent_json("standby", "enable", "--role", "postgres", *require, passwords=True)
            ways += [back["secrets_synchronous"], again["rehash_synchronous"]]
    finally:
        report = stop_loop(env, proc)
    print("fresh sessions through Pgpool-II while the secrets switched:", json.dumps(report))
    assert ways == [SYNCHRONOUS] * (2 * SWITCHES), ways
    assert report["queries"] > 10 * SWITCHES, report
    # The standby's 1.5 s apply delay is never seen: what is left is the moment between the standby's
    # apply and the primary learning of it (about 0.1 s here), far shorter than the delay.
    assert all(ms < APPLY_DELAY_MS / 2 for ms in report["outages_ms"]), report
    # Nothing of the moment of synchronous replication stays behind.
    rc, out = env.exec("primary", ["runuser", "-u", "postgres", "--", "psql", "-h", "/var/run/postgresql", "-XAtqc",
                                   "SELECT current_setting('synchronous_standby_names') || '|' || count(*) "
                                   "FROM pg_stat_replication WHERE sync_state = 'async'"])
    assert (rc, out.strip()) == (0, "|1"), out
