"""Nobody locked out on a PostgreSQL + Pgpool-II cluster: application roles of every kind keep logging in.

Before enable the test creates, the way the platform's users do:
* ``lk_md5``: an md5 role (``password_encryption = md5``, ``CREATE ROLE``) that logs in directly;
* ``lk_pool``: an md5 role added to pool_passwd the way the platform's doc says (``pg_md5 --md5auth``
  on the Pgpool-II node), logging in through Pgpool-II;
* ``lk_scram``: a role with a SCRAM secret;
* ``lk_new``: a role without a password, allowed through Pgpool-II later by ``role set-password`` +
  ``pool-passwd allow`` (letting a user through Pgpool-II with SCRAM).

The agent runs in the cluster order with default options (as tests/docker/test_pg_enable.py does).
Checked: the pre-flight report names the roles and a deliberately open plaintext session; a client
that connects without TLS after TLS was offered stops the require stage before anything changes
(``--enforce-anyway`` overrides); after enable every role logs in over TLS with verify-full, directly
and through Pgpool-II; no password shows up in any /proc/*/cmdline while the "allow" commands run;
after disable every role logs in as before and every standby streams again.
"""

from __future__ import annotations

import json
import subprocess
import time
from pathlib import Path

import pytest
from hardening_helpers import PG_FILES, POOL_FILES, ROOT_ON_CLIENT, issue_pg_certificates
from harness import RELEASES, Env, exec_argv, sim_env, wait_for

SAMPLER_SRC = Path(__file__).with_name("cmdline_sampler.py")
SAMPLER, SAMPLES, STOP = "/tmp/lk-sampler.py", "/tmp/lk-cmdlines.txt", "/tmp/lk-cmdlines.stop"
PASSWORDS = {"lk_md5": "Md5-direct-Pw-71", "lk_pool": "Md5-pool-Pw-72", "lk_scram": "Scram-Pw-73",
             "lk_new": "New-Scram-Pw-74"}
STATE: dict = {}


@pytest.fixture(scope="module", params=RELEASES)
def env(request, engine):
    for e in sim_env("pg-cluster", request.param, "lk"):
        issue_pg_certificates(e)
        e.state["sessions"] = []
        yield e
        for proc in e.state["sessions"]:
            proc.kill()


def psql_as(env: Env, node: str, user: str, mode: str, sql: str = "SELECT 1", password: str | None = None,
            app: str = "lk-test") -> tuple[int, str]:
    conninfo = (f"host={env.host[node]} user={user} dbname=postgres sslmode={mode} connect_timeout=5 "
                f"application_name={app}" + (f" sslrootcert={ROOT_ON_CLIENT}" if mode.startswith("verify") else ""))
    return env.exec("client", ["psql", "-XAtq", "-d", conninfo, "-c", sql],
                    env={"PGPASSWORD": password or PASSWORDS.get(user) or env.pw[user]})


def login_works(env: Env, node: str, user: str, mode: str) -> bool:
    """A login as ``user`` through ``node`` with ``mode``; over TLS the session must be encrypted."""
    rc, out = psql_as(env, node, user, mode, "SELECT ssl::text FROM pg_stat_ssl WHERE pid = pg_backend_pid()")
    if rc != 0:
        print(f"{user}@{node} ({mode}): {out.strip()}")
        return False
    return mode == "disable" or out.strip() == "true"


def local_sql(env: Env, node: str, sql: str) -> str:
    rc, out = env.exec(node, ["runuser", "-u", "postgres", "--", "psql", "-XAtq", "-v", "ON_ERROR_STOP=1",
                              "-h", "/var/run/postgresql", "-f", "-"], stdin=sql.encode())
    assert rc == 0, out
    return out.strip()


def open_plaintext_session(env: Env, node: str, user: str, app: str) -> None:
    """A client session without TLS that stays connected (pg_sleep), visible in pg_stat_activity."""
    conninfo = f"host={env.host[node]} user={user} dbname=postgres sslmode=disable application_name={app}"
    proc = subprocess.Popen(exec_argv(env.c["client"], ["psql", "-XAtq", "-d", conninfo, "-c", "SELECT pg_sleep(900)"],
                                      env={"PGPASSWORD": PASSWORDS[user]}, stdin=False),
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    env.state["sessions"].append(proc)
    wait_for(lambda: local_sql(env, node, f"SELECT count(*) FROM pg_stat_activity WHERE application_name = '{app}'")
             == "1", 30, f"session {app} on {node}")


def agent_fails(env: Env, node: str, *args: str, stdin: bytes | None = None) -> str:
    proc = env.agent(node, *args, stdin=stdin)
    err = proc.stderr.decode().strip()
    assert proc.returncode == 2 and len(err.splitlines()) == 1, (proc.returncode, err, proc.stdout.decode())
    return err


def preflight(env: Env, node: str) -> dict:
    return env.agent_json(node, "preflight")


def test_roles_of_every_kind_log_in_before_enable(env):
    local_sql(env, "primary", f"""
SET password_encryption = 'md5';
CREATE ROLE lk_md5 LOGIN PASSWORD '{PASSWORDS["lk_md5"]}';
CREATE ROLE lk_pool LOGIN PASSWORD '{PASSWORDS["lk_pool"]}';
SET password_encryption = 'scram-sha-256';
CREATE ROLE lk_scram LOGIN PASSWORD '{PASSWORDS["lk_scram"]}';
CREATE ROLE lk_new LOGIN;
""")
    # The platform's documented way to let a user through Pgpool-II (password on its command line).
    rc, out = env.exec("pgpool", ["pg_md5", "--md5auth", "--username=lk_pool", "-f", "/etc/pgpool-II/pgpool.conf",
                                  PASSWORDS["lk_pool"]])
    assert rc == 0, out
    env.state["pool_passwd_before"] = env.exec("pgpool", ["cat", "/etc/pgpool-II/pool_passwd"])[1]
    before = {(u, n): login_works(env, n, u, "disable") for u, n in [
        ("lk_md5", "primary"), ("lk_md5", "standby"), ("lk_pool", "pgpool"), ("lk_pool", "primary"),
        ("lk_scram", "primary"), ("lk_scram", "standby"), ("lk_md5", "pgpool"), ("lk_scram", "pgpool")]}
    print("logins before enable:", before)
    STATE["before"] = before
    assert all(v for (u, n), v in before.items() if (u, n) not in (("lk_md5", "pgpool"), ("lk_scram", "pgpool")))
    # Without a pool_passwd entry nobody gets through Pgpool-II, before the add-on as after it.
    assert not before[("lk_md5", "pgpool")] and not before[("lk_scram", "pgpool")]
    env.state["sha_before"] = {**env.sha("primary", PG_FILES), **env.sha("pgpool", POOL_FILES)}


def test_preflight_names_roles_sessions_and_replication(env):
    open_plaintext_session(env, "primary", "lk_md5", "lk-plain")
    shas = {**env.sha("primary", PG_FILES), **env.sha("pgpool", POOL_FILES)}
    report = preflight(env, "primary")
    assert {"lk_md5", "lk_pool", "webadmin"} <= set(report["md5_roles"]), report["md5_roles"]
    assert "lk_scram" in report["scram_roles"] and "lk_new" in report["no_password_roles"]
    remote = {r["role"] for r in report["remote_roles"]}
    assert {"lk_md5", "lk_pool", "lk_scram"} <= remote and "lk_new" not in remote
    plain = [s for s in report["sessions_without_tls"] if s["application"] == "lk-plain"]
    assert len(plain) == 1 and plain[0]["user"] == "lk_md5" and plain[0]["address"] == env.ip["client"], report
    assert plain[0]["after"] == "refused"
    assert not any(s["application"] == "dbtls-agent" for s in report["sessions_without_tls"])  # our own probe
    standbys = report["replication"]["standbys"]
    assert [(s["address"], s["state"]) for s in standbys] == [(env.ip["standby"], "streaming")], standbys
    assert {"lk_md5", "lk_pool"} <= {n["who"] for n in report["needs_action"]}
    assert report["blockers"] == []  # TLS is not offered yet: no client had the choice
    pool = preflight(env, "pgpool")
    assert {"webadmin", "pgpool", "lk_pool"} <= set(pool["by_kind"]["md5"]), pool["by_kind"]
    assert {"lk_md5", "lk_scram", "lk_new"} <= set(pool["without_entry"]), pool
    assert pool["md5_rules_after_enable"] == ["lk_pool"]
    for node in ("primary", "pgpool"):
        proc = env.agent(node, "preflight", "--text")
        text = proc.stdout.decode()
        print(f"preflight --text on {node}:\n{text}")
        assert proc.returncode == 0 and 2 <= len(text.splitlines()) <= 8 and "lk_pool" in text, text
    assert {**env.sha("primary", PG_FILES), **env.sha("pgpool", POOL_FILES)} == shas  # read-only


def test_enable_keeps_every_login_and_stops_for_a_client_without_tls(env):
    for node in ("primary", "standby"):
        env.agent_json(node, "enable", "--role", "postgres", "--stage", "offer", passwords=True)
    env.agent_json("standby", "enable", "--role", "postgres", "--stage", "use")
    pool = env.agent_json("pgpool", "enable", "--role", "pgpool", passwords=True)
    assert pool["md5_rules"] == ["lk_pool"] and [n["who"] for n in pool["needs_action"]] == ["lk_pool"], pool
    # A client that connects without TLS although TLS is offered now: it would be locked out.
    open_plaintext_session(env, "standby", "lk_scram", "lk-refuser")
    primary = env.agent_json("primary", "enable", "--role", "postgres", "--stage", "require",
                             "--no-client-cert-address", env.ip["pgpool"], passwords=True)
    assert {"lk_md5", "lk_pool"} <= set(primary["md5_rules"]) and "lk_scram" not in primary["md5_rules"], primary
    assert "webadmin" in primary["rehashed"]
    who = {n["who"] for n in primary["needs_action"]}
    assert {"lk_md5", "lk_pool", f"lk_md5 from {env.ip['client']} (lk-plain)"} <= who, primary["needs_action"]
    hba_before = env.sha("standby", PG_FILES)
    args = ("enable", "--role", "postgres", "--stage", "require", "--no-client-cert-address", env.ip["pgpool"],
            "--passwords-stdin")
    err = agent_fails(env, "standby", *args, stdin=json.dumps(env.pw).encode())
    print("require on the standby:", err)
    assert "stopped before changing anything" in err and "lk-refuser" in err and "--enforce-anyway" in err
    assert env.sha("standby", PG_FILES) == hba_before
    standby = env.agent_json("standby", *args[:-1], "--enforce-anyway", passwords=True)
    assert [e["who"] for e in standby["enforced_anyway"]] == [f"lk_scram from {env.ip['client']} (lk-refuser)"]
    assert {"lk_md5", "lk_pool"} <= set(standby["md5_rules"])
    STATE["enable"] = {"primary": primary, "standby": standby, "pgpool": pool}


@pytest.mark.parametrize("user,node", [("lk_md5", "primary"), ("lk_md5", "standby"), ("lk_pool", "pgpool"),
                                       ("lk_pool", "primary"), ("lk_pool", "standby"), ("lk_scram", "primary"),
                                       ("lk_scram", "standby"), ("webadmin", "pgpool")])
def test_every_role_logs_in_over_tls_after_enable(env, user, node):
    assert login_works(env, node, user, "verify-full")
    if node != "pgpool":
        assert not login_works(env, node, user, "disable")  # and only over TLS


def start_sampler(env: Env, node: str) -> None:
    subprocess.run(["docker", "cp", str(SAMPLER_SRC), f"{env.c[node]}:{SAMPLER}"], check=True, capture_output=True)
    env.exec(node, ["rm", "-f", SAMPLES, STOP])
    subprocess.run(exec_argv(env.c[node], ["python3", SAMPLER, SAMPLES, STOP, "600"], stdin=False, detach=True),
                   check=True)
    wait_for(lambda: SAMPLER in env.exec(node, ["ps", "-eo", "args"])[1], 30, f"sampler in {node}")


def stop_sampler(env: Env, node: str) -> str:
    env.exec(node, ["touch", STOP])
    wait_for(lambda: env.exec(node, ["test", "-s", SAMPLES])[0] == 0, 30, f"sampler output in {node}")
    return env.exec(node, ["cat", SAMPLES])[1]


def test_allow_a_new_role_through_pgpool_without_a_password_on_any_command_line(env):
    password = PASSWORDS["lk_new"]
    assert not login_works(env, "pgpool", "lk_new", "verify-full")
    err = agent_fails(env, "standby", "role", "set-password", "--user", "lk_new", "--password-file", "/root/none")
    assert "standby" in err
    assert "invalid role name" in agent_fails(env, "primary", "role", "set-password", "--user", "lk new;",
                                              "--password-file", "/root/none")
    for node in ("primary", "pgpool"):
        start_sampler(env, node)
    started = time.monotonic()
    # On the primary: the password in a root-only file, which the agent deletes after reading.
    rc, out = env.exec("primary", ["sh", "-c", "umask 077; cat > /root/lk-pw"], stdin=password.encode() + b"\n")
    assert rc == 0, out
    role = env.agent_json("primary", "role", "set-password", "--user", "lk_new", "--password-file", "/root/lk-pw")
    assert role["changed"] and role["before"] == "none" and role["secret"] == "scram", role
    assert env.exec("primary", ["test", "-e", "/root/lk-pw"])[0] != 0  # deleted
    # On Pgpool-II: the password sealed to its one-run key (the manifest's path).
    public = env.agent("pgpool", "secrets", "recipient").stdout
    blob = env.agent("primary", "secrets", "seal", "--no-gather",
                     stdin=public + json.dumps({"lk_new": password}).encode()).stdout
    assert blob.startswith(b"dbtls-sealed-1:") and password.encode() not in blob
    allowed = env.agent_json("pgpool", "pool-passwd", "allow", "--user", "lk_new", "--passwords-sealed", stdin=blob)
    seconds = time.monotonic() - started
    samples = {node: stop_sampler(env, node) for node in ("primary", "pgpool")}
    print(f"set-password + allow took {seconds:.1f}s; login: {allowed['login']}")
    assert allowed["login"]["ok"] and allowed["login"]["sslmode"] == "verify-full" and allowed["login"]["backend_ssl"]
    assert allowed["login"]["host"] == env.host["pgpool"]
    for node, text in samples.items():
        scans = int(text.splitlines()[0].split()[-1])
        print(f"sampler on {node}: {scans} scans, {len(text.splitlines()) - 1} distinct command lines")
        assert scans > 100, (node, scans)
        assert not [p for p in PASSWORDS.values() if p in text], node
    assert "lk_new:AES" in env.exec("pgpool", ["cat", "/etc/pgpool-II/pool_passwd"])[1]
    assert login_works(env, "pgpool", "lk_new", "verify-full")
    assert login_works(env, "primary", "lk_new", "verify-full")
    rc, out = psql_as(env, "pgpool", "lk_new", "verify-full", password="wrong-password")
    assert rc != 0, out


def test_disable_gives_everyone_their_login_back_and_replication_streams(env):
    for node in ("standby", "primary"):
        env.agent_json(node, "disable", "--role", "postgres", "--stage", "require")
    pool = env.agent_json("pgpool", "disable", "--role", "pgpool")
    assert pool["kept_users"] == ["lk_new"], pool
    for node in ("standby", "primary"):
        env.agent_json(node, "disable", "--role", "postgres")
    waited = env.agent_json("primary", "replication", "wait", "--timeout", "60")
    print("replication wait on the primary after disable:", waited)
    assert waited["ok"] and [r["state"] for r in waited["replicas"]] == ["streaming"]
    assert env.agent_json("standby", "replication", "wait", "--timeout", "60")["ok"]
    after = {**env.sha("primary", PG_FILES), **env.sha("pgpool", POOL_FILES)}
    changed = sorted(p for p, h in after.items() if h != env.state["sha_before"][p])
    assert changed == ["/etc/pgpool-II/pool_passwd"], changed  # the allowed user's entry stays
    passwd = env.exec("pgpool", ["cat", "/etc/pgpool-II/pool_passwd"])[1]
    assert passwd.startswith(env.state["pool_passwd_before"]) and "lk_new:AES" in passwd
    for (user, node), worked in STATE["before"].items():
        assert login_works(env, node, user, "disable") == worked, (user, node)
    assert login_works(env, "pgpool", "lk_new", "disable")
