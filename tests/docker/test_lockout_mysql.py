"""Nobody locked out on a MariaDB cluster with ProxySQL: application accounts, sessions, replication.

Real MariaDB primary and replica, the ProxySQL admin-interface TEST DOUBLE (it holds ProxySQL's tables
but carries no client traffic, so logins *through* ProxySQL's frontend cannot be tried here; what
decides them, ``mysql_users.use_ssl``/``active`` and ``mysql-have_ssl`` at runtime, is checked).

Before enable: an application account ``lk_app``@'%' next to the platform's own application user
(the one in ProxySQL's mysql_users), and a client session deliberately connected without TLS. The
pre-flight report must name them. After enable with default options (no Require TLS) every account
logs in as before, now also over TLS with the server verified; a client connected without TLS after
TLS was offered stops ``--require-tls`` before anything changes. After disable (which restarts the
primary) ``replication wait`` on the replica returns with both threads running, and every account
logs in as before.
"""

from __future__ import annotations

import subprocess
import time

import pytest
from hardening_helpers import ROOT_ON_CLIENT, issue_mysql_certificates, proxysql_admin
from harness import RELEASES, Env, exec_argv, sim_env, wait_for

APP_PASSWORD = "Lk-App-Pw-81"
PFS_DROPIN = "/etc/mysql/conf.d/zz-lk-performance-schema.cnf"
STATE: dict = {}


@pytest.fixture(scope="module", params=RELEASES)
def env(request, engine):
    for e in sim_env("mariadb-cluster", request.param, "lk"):
        e.state["sessions"] = []
        e.state["accounts"] = {"lk_app": APP_PASSWORD, e.secrets["APP_USER"]: e.secrets["APP_PASSWORD"]}
        yield e
        for proc in e.state["sessions"]:
            proc.kill()


def root_sql(env: Env, node: str, sql: str) -> str:
    rc, out = env.exec(node, ["mariadb", "-uroot", "--batch", "--skip-column-names"], stdin=sql.encode())
    assert rc == 0, out
    return out.strip()


def login(env: Env, node: str, user: str, tls: bool) -> str | None:
    """The session's Ssl_cipher ('' without TLS) when ``user`` logs in to ``node``, None when refused."""
    args = ["mariadb", f"--host={env.host[node]}", f"--user={user}", "--connect-timeout=5", "--batch",
            "--skip-column-names"]
    args += ["--ssl", "--ssl-verify-server-cert", f"--ssl-ca={ROOT_ON_CLIENT}"] if tls else ["--skip-ssl"]
    rc, out = env.exec("client", args + ["-e", "SHOW SESSION STATUS LIKE 'Ssl_cipher'"],
                       env={"MYSQL_PWD": env.state["accounts"][user]})
    if rc != 0:
        print(f"{user}@{node} tls={tls}: {out.strip()}")
        return None
    return out.split("\t", 1)[1].strip() if "\t" in out else ""


def open_session(env: Env, user: str, tls: bool, tag: str) -> subprocess.Popen:
    args = ["mariadb", f"--host={env.host['primary']}", f"--user={user}"]
    args += ["--ssl", f"--ssl-ca={ROOT_ON_CLIENT}"] if tls else ["--skip-ssl"]
    proc = subprocess.Popen(exec_argv(env.c["client"], [*args, "-e", f"SELECT SLEEP(900) AS {tag}"],
                                      env={"MYSQL_PWD": env.state["accounts"][user]}, stdin=False),
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    env.state["sessions"].append(proc)
    wait_for(lambda: root_sql(env, "primary", "SELECT COUNT(*) FROM information_schema.PROCESSLIST "
                                               f"WHERE INFO LIKE '%AS {tag}'") == "1", 30, f"session {tag}")
    return proc


def replica_threads(env: Env) -> tuple[str, str]:
    rc, out = env.exec("standby", ["mariadb", "-uroot", "-e", "SHOW SLAVE STATUS\\G"])
    assert rc == 0, out
    fields = {k.strip(): v.strip() for k, _, v in (line.partition(":") for line in out.splitlines()) if v}
    return fields.get("Slave_IO_Running", "?"), fields.get("Slave_SQL_Running", "?")


def proxysql_user(env: Env) -> str:
    return proxysql_admin(env, "SELECT active, use_ssl FROM runtime_mysql_users WHERE username = '{}'".format(
        env.secrets["APP_USER"])).strip()


def test_application_accounts_log_in_before_enable(env):
    root_sql(env, "primary", f"CREATE USER 'lk_app'@'%' IDENTIFIED BY '{APP_PASSWORD}'; "
                             "GRANT SELECT ON *.* TO 'lk_app'@'%';")
    issue_mysql_certificates(env)
    wait_for(lambda: root_sql(env, "standby", "SELECT COUNT(*) FROM mysql.user WHERE User = 'lk_app'") == "1", 30,
             "lk_app on the replica")
    before = {(u, n): login(env, n, u, tls=False) for u in env.state["accounts"] for n in ("primary", "standby")}
    print("logins before enable:", before)
    assert all(v == "" for v in before.values()), before  # plaintext, as the applications connect today
    assert proxysql_user(env) == "1\t0"  # active, no TLS demanded
    STATE["before"] = before
    STATE["my.cnf"] = env.sha("primary", ["/etc/my.cnf"])


def test_preflight_names_accounts_sessions_and_replication(env):
    open_session(env, "lk_app", tls=False, tag="lk_plain")
    report = env.agent_json("primary", "preflight")
    accounts = {a["account"] for a in report["remote_accounts"]}
    assert {"lk_app@%", env.secrets["APP_USER"] + "@%"} <= accounts, accounts
    plain = [s for s in report["sessions_without_tls"] if s["user"] == "lk_app"]
    assert [(s["address"], s["tls"], s["kind"]) for s in plain] == [(env.ip["client"], False, "client")], report
    assert "lk_app@%" in report["require_tls_would_refuse"]["accounts_without_tls_requirement"]
    assert report["replication"]["replicas"] == [env.ip["standby"]]
    assert report["blockers"] == []  # no TLS offered yet: no client has had the choice
    replica = env.agent_json("standby", "preflight")
    assert [(c["io_running"], c["sql_running"]) for c in replica["replication"]["channels"]] == [("Yes", "Yes")]
    proxy = env.agent_json("proxysql", "preflight")
    assert proxy["require_tls_would_refuse"]["users_without_use_ssl"] == [env.secrets["APP_USER"]], proxy
    for node in ("primary", "standby", "proxysql"):
        text = env.agent(node, "preflight", "--text").stdout.decode()
        print(f"preflight --text on {node}:\n{text}")
        assert 2 <= len(text.splitlines()) <= 8, text
    assert env.sha("primary", ["/etc/my.cnf"]) == STATE["my.cnf"]


def test_enable_with_default_options_keeps_every_login(env):
    # performance_schema on (test set-up only): the per-thread TLS state is read from it. The offer
    # stage's restart picks the drop-in up.
    rc, out = env.exec("primary", ["sh", "-c", f"printf '[mysqld]\\nperformance_schema=ON\\n' > {PFS_DROPIN}"])
    assert rc == 0, out
    for node in ("standby", "primary"):
        result = env.agent_json(node, "enable", "--role", "mysql", "--stage", "offer")
        assert result["restarted"] and result["needs_action"] == [], result
    env.agent_json("standby", "enable", "--role", "mysql", "--stage", "use")
    proxy = env.agent_json("proxysql", "enable", "--role", "proxysql")
    assert proxy["require_tls"] is False and proxy["needs_action"] == []
    for node in ("standby", "primary"):
        env.agent_json(node, "enable", "--role", "mysql", "--stage", "require")
    assert proxysql_user(env) == "1\t0"  # application users untouched: TLS allowed, not demanded
    assert proxysql_admin(env, "SELECT variable_value FROM runtime_global_variables "
                               "WHERE variable_name = 'mysql-have_ssl'").strip() == "true"
    for user in env.state["accounts"]:
        for node in ("primary", "standby"):
            cipher = login(env, node, user, tls=True)
            assert cipher, (user, node)  # over TLS, the server's certificate and name verified
            assert login(env, node, user, tls=False) == "", (user, node)  # and as before


def test_require_tls_stops_while_a_client_without_tls_is_connected(env):
    open_session(env, "lk_app", tls=False, tag="lk_refuser")
    open_session(env, "lk_app", tls=True, tag="lk_tls")
    report = env.agent_json("primary", "preflight")
    assert report["performance_schema"] is True
    mine = {s["tls"] for s in report["sessions"] if s["user"] == "lk_app"}
    assert mine == {True, False}, report["sessions"]
    assert any("lk_app" in b["who"] for b in report["blockers"]), report["blockers"]
    proc = env.agent("primary", "enable", "--role", "mysql", "--stage", "require", "--require-tls")
    err = proc.stderr.decode().strip()
    print("require --require-tls:", err)
    assert proc.returncode == 2 and len(err.splitlines()) == 1 and "stopped before changing anything" in err
    assert root_sql(env, "primary", "SELECT @@require_secure_transport") == "0"
    for proc in env.state["sessions"]:
        proc.kill()
    for pid in root_sql(env, "primary", "SELECT ID FROM information_schema.PROCESSLIST WHERE USER = 'lk_app'").split():
        root_sql(env, "primary", f"KILL {pid}")


def test_disable_then_replication_wait_brings_the_replica_back(env):
    env.agent_json("proxysql", "disable", "--role", "proxysql")
    env.agent_json("standby", "disable", "--role", "mysql")
    result = env.agent_json("primary", "disable", "--role", "mysql")  # restarts the primary
    assert result.get("restarted"), result
    state_right_after = replica_threads(env)
    started = time.monotonic()
    waited = env.agent_json("standby", "replication", "wait", "--timeout", "120")
    seconds = time.monotonic() - started
    threads = replica_threads(env)
    print(f"replica right after the primary's disable: IO/SQL {state_right_after}; replication wait took "
          f"{seconds:.2f}s (agent: {waited['seconds']}s, kicks {[r['kicks'] for r in waited['replicas']]}); "
          f"then IO/SQL {threads}")
    assert waited["ok"] and threads == ("Yes", "Yes")
    assert seconds < 30  # well before the replica's own 60 s retry timer
    primary = env.agent_json("primary", "replication", "wait", "--timeout", "60")
    assert primary["ok"] and [r["name"] for r in primary["replicas"]] == [env.ip["standby"]], primary
    root_sql(env, "primary", "CREATE DATABASE IF NOT EXISTS lk_after")
    wait_for(lambda: "lk_after" in root_sql(env, "standby", "SHOW DATABASES"), 30, "the replica to apply a change")
    for (user, node), cipher in STATE["before"].items():
        assert login(env, node, user, tls=False) == cipher, (user, node)
    assert proxysql_user(env) == "1\t0"
    assert env.sha("primary", ["/etc/my.cnf"]) == STATE["my.cnf"]
