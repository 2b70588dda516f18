"""enable/disable --role mysql|proxysql and user-cert against the simulated MariaDB cluster.

Real MariaDB primary (node101) + replica (node102), the ProxySQL admin TEST DOUBLE (node103), real
``mariadb`` clients in the client container. Tests run in file order and share one environment
(``my-mariadb-cluster-<release>``). Per-version facts (restart on first enable, failed queries during the
re-issue) are printed and written to ``$DBTLS_RESULTS_DIR/mysql-<release>.json`` when that is set.
"""

from __future__ import annotations

import hashlib
import json
import os
import subprocess

import mysql_helpers as h
import pytest
from harness import RELEASES, exec_argv, sim_env, wait_for

ROOT_CRT = "/tmp/my-root.crt"
RESULTS = {}  # type: dict


@pytest.fixture(scope="module", params=RELEASES)
def env(request, engine):
    # DBTLS_MYSQL_ENV_PREFIX: run beside other engineers' environments (default my).
    for e in sim_env("mariadb-cluster", request.param, os.environ.get("DBTLS_MYSQL_ENV_PREFIX", "my")):
        for node in ("mariadb", e.node("mariadb", 1).name, "proxysql"):
            h.install_agent(e, node if node != "mariadb" else e.node("mariadb", 0).name)
        yield e


def primary(env):
    return env.node("mariadb", 0)


def replica(env):
    return env.node("mariadb", 1)


def sql(env, node, query, column_names=False):
    args = ["mariadb", "-uroot", "--batch"] + ([] if column_names else ["--skip-column-names"]) + ["-e", query]
    code, out = env.exec(node.name, args)
    assert code == 0, out
    return out


def client(env, host, query, user=None, password=None, tls=True, cert=None):
    """The mariadb client in the client container, verifying the server like a careful user."""
    user = user or "root"
    password = env.secrets["MYSQL_ROOT_PASSWORD"] if password is None else password
    args = ["mariadb", "--host=" + host, "--user=" + user, "--connect-timeout=10", "--batch", "--skip-column-names"]
    if tls:
        args += ["--ssl-verify-server-cert", "--ssl-ca=" + ROOT_CRT]
    else:
        args += ["--skip-ssl"]
    if cert:
        args += ["--ssl-cert=" + cert + "/client.crt", "--ssl-key=" + cert + "/client.key"]
    return env.exec("client", args + ["-e", query], env={"MYSQL_PWD": password})


def sha(env, node, path):
    return hashlib.sha256(h.read_file(env, node, path)).hexdigest()


def admin(env, query):
    code, out = env.exec("proxysql", ["mariadb", "--skip-ssl", "-h127.0.0.1", "-P6032", "-uadmin", "--batch",
                                      "--skip-column-names", "-e", query], env={"MYSQL_PWD": "admin"})
    assert code == 0, out
    return out


def proxysql_snapshot(env):
    return {t: admin(env, "SELECT * FROM " + t + " ORDER BY 1, 2") for t in (
        "runtime_global_variables", "disk.global_variables", "runtime_mysql_servers", "disk.mysql_servers",
        "runtime_mysql_users", "disk.mysql_users")}


def state_of(env, node):
    return {
        "my.cnf": sha(env, node.name, "/etc/my.cnf"),
        "conf.d": env.exec(node.name, ["ls", "/etc/mysql/conf.d"])[1],
        "vars": sql(env, node, "SELECT @@have_ssl, @@require_secure_transport, @@ssl_cert"),
        "users": sql(env, node, "SELECT User, Host, ssl_type FROM mysql.user ORDER BY 1, 2"),
    }


def replica_fields(env):
    from dbtls_agent.roles.mysql.flavor import parse_status_rows

    rows = parse_status_rows(sql(env, replica(env), "SHOW SLAVE STATUS", column_names=True))
    return rows[0] if rows else {}


def replica_ssl_fields(env):
    """The channel's TLS options (MariaDB 11.x: MASTER_SSL=1 and verification on by default)."""
    return {k: v for k, v in replica_fields(env).items() if k.startswith("Master_SSL")}


def test_enable_offer_use_require_in_cluster_order(env):
    RESULTS["before"] = {n.name: state_of(env, n) for n in (primary(env), replica(env))}
    RESULTS["replica_before"] = replica_ssl_fields(env)
    RESULTS["proxysql_before"] = proxysql_snapshot(env)
    h.issue_server_certs(env, primary(env).name, [primary(env).name, replica(env).name, env.node("proxysql").name])
    restarts = {}
    for node in (replica(env), primary(env)):  # replicas first, then the primary
        code, data, raw = h.role(env, node.name, "enable", "mysql", "--stage", "offer")
        assert code == 0, raw
        assert data["verified"]["tls_version"] in ("TLSv1.2", "TLSv1.3")
        restarts[node.name] = data["restarted"]
        RESULTS["version"] = data["version"]
    code, data, raw = h.role(env, replica(env).name, "enable", "mysql", "--stage", "use")
    assert code == 0 and data["replication"]["replica"], raw
    code, data, raw = h.role(env, "proxysql", "enable", "proxysql", "--require-tls")
    assert code == 0, raw
    for node in (replica(env), primary(env)):
        code, data, raw = h.role(env, node.name, "enable", "mysql", "--stage", "require", "--require-tls")
        assert code == 0, raw
    # A second identical run changes nothing and restarts nothing.
    code, data, raw = h.role(env, primary(env).name, "enable", "mysql", "--stage", "offer")
    assert code == 0 and data["apply"] == "none", raw
    RESULTS["first_enable_restart"] = restarts
    print("first enable restart per node ({}): {}".format(RESULTS["version"], restarts))
    assert all(restarts.values()), "MariaDB's ssl_* are read-only: the first enable must restart"


def test_client_verifies_every_node_by_hostname(env):
    h.copy_between(env, primary(env).name, h.CERT_DIR + "/server/root.crt", "client", ROOT_CRT)
    for node in (primary(env), replica(env)):
        code, out = client(env, node.hostname, "SHOW SESSION STATUS LIKE 'Ssl_version'")
        assert code == 0, out
        assert "TLSv1." in out, out


def test_plaintext_login_is_refused_with_require_tls(env):
    for node in (primary(env), replica(env)):
        code, out = client(env, node.hostname, "SELECT 1", tls=False)
        assert code != 0, out
        assert sql(env, node, "SELECT @@require_secure_transport").strip() == "1"
        # the platform's local admin access (root over the Unix socket) keeps working
        assert sql(env, node, "SELECT 1").strip() == "1"


def test_replication_runs_over_tls(env):
    fields = replica_fields(env)
    assert fields["Master_SSL_Allowed"] == "Yes" and fields["Slave_IO_Running"] == "Yes", fields
    # the channel trusts our CA, not just "some TLS" (11.x replicas use TLS before enable already)
    assert fields["Master_SSL_CA_File"] == h.CERT_DIR + "/server/root.crt", fields
    sql(env, primary(env), "CREATE DATABASE IF NOT EXISTS my_tls_check")
    wait_for(lambda: "my_tls_check" in sql(env, replica(env), "SHOW DATABASES"), 60,
                 "the replica to apply a change over TLS")


def test_user_cert_requires_the_client_certificate(env):
    sql(env, primary(env), "CREATE USER IF NOT EXISTS 'certuser'@'%' IDENTIFIED BY 'pw-certuser'")
    out = h.agent_out(env, primary(env).name, ["user-cert", "--user", "certuser"])
    assert json.loads(out)["requirement"] == "X509", out
    users_dir = h.CERT_DIR + "/client/users/certuser"
    for name in ("client.crt", "client.key"):
        h.copy_between(env, primary(env).name, users_dir + "/" + name, "client", "/tmp/certuser/" + name)
    code, out = client(env, primary(env).hostname, "SELECT CURRENT_USER()", user="certuser", password="pw-certuser")
    assert code != 0, out
    code, out = client(env, primary(env).hostname, "SELECT CURRENT_USER()", user="certuser", password="pw-certuser",
                       cert="/tmp/certuser")
    assert code == 0 and "certuser" in out, out
    out = h.agent_out(env, primary(env).name, ["user-cert", "--user", "certuser", "--subject", "--no-issue"])
    assert json.loads(out)["requirement"] == "SUBJECT /CN=certuser"
    code, out = client(env, primary(env).hostname, "SELECT 1", user="certuser", password="pw-certuser", cert="/tmp/certuser")
    assert code == 0, out


def test_reissue_swaps_the_certificate_with_flush_ssl_without_failed_queries(env):
    host = primary(env).hostname
    code, before, raw = h.role(env, primary(env).name, "status", "mysql")
    assert code == 0, raw
    loop = ("rm -f /tmp/my-stop; ok=0; fail=0; for i in $(seq 1 600); do "
            f"if mariadb --host={host} --user=root --ssl-verify-server-cert --ssl-ca={ROOT_CRT} --connect-timeout=5 "
            "-e 'SELECT 1' >/dev/null 2>&1; then ok=$((ok+1)); else fail=$((fail+1)); fi; "
            "[ -f /tmp/my-stop ] && break; done; echo ok=$ok fail=$fail")
    proc = subprocess.Popen(exec_argv(h.container(env, "client"), ["bash", "-c", loop],
                                      env={"MYSQL_PWD": env.secrets["MYSQL_ROOT_PASSWORD"]}, stdin=False),
                            stdout=subprocess.PIPE)
    try:
        h.issue_server_certs(env, primary(env).name, [primary(env).name], rotate=True)
        code, data, raw = h.role(env, primary(env).name, "enable", "mysql", "--stage", "offer", "--require-tls")
        assert code == 0, raw
        assert data["apply"] == "FLUSH SSL" and not data["restarted"], data
    finally:
        env.exec("client", ["touch", "/tmp/my-stop"])
        out = proc.communicate(timeout=300)[0].decode()
    counts = dict(part.split("=") for part in out.split())
    RESULTS["reissue"] = {"ok": int(counts["ok"]), "failed": int(counts["fail"])}
    print("re-issue with FLUSH SSL: {} queries ok, {} failed".format(counts["ok"], counts["fail"]))
    assert int(counts["fail"]) == 0 and int(counts["ok"]) > 0, out
    code, after, raw = h.role(env, primary(env).name, "status", "mysql")
    assert after["serves_our_certificate"], after
    assert after["served"]["sha256"] != before["served"]["sha256"]


def test_proxysql_settings_at_runtime_and_on_disk(env):
    for table in ("runtime_global_variables", "disk.global_variables"):
        assert admin(env, f"SELECT variable_value FROM {table} WHERE variable_name='mysql-have_ssl'"
                     ).strip() == "true"
        assert admin(env, f"SELECT variable_value FROM {table} WHERE variable_name='mysql-ssl_p2s_ca'"
                     ).strip() == h.CERT_DIR + "/server/root.crt"
    for table in ("runtime_mysql_servers", "disk.mysql_servers", "runtime_mysql_users", "disk.mysql_users"):
        assert set(admin(env, "SELECT use_ssl FROM " + table).split()) == {"1"}, table
    served = admin(env, "SELECT cert_sha256 FROM stats_double_tls").strip()
    code, out = env.exec("proxysql", ["openssl", "x509", "-in", h.CERT_DIR + "/server/server.crt", "-noout",
                                      "-fingerprint", "-sha256"])
    assert served == out.strip().split("=")[1].replace(":", "").lower()


def test_proxysql_bad_credentials_and_unreachable_admin_fail_cleanly(env):
    code, data, raw = h.role(env, "proxysql", "enable", "proxysql", passwords={"proxysql-admin": "admin:wrong"})
    assert code == 2 and "Access denied" in raw and len(raw.strip().splitlines()) == 1, raw
    original = h.read_file(env, "proxysql", "/etc/proxysql.cnf")
    try:
        env.exec("proxysql", ["sed", "-i", "s/0.0.0.0:6032/0.0.0.0:6099/", "/etc/proxysql.cnf"])
        code, data, raw = h.role(env, "proxysql", "enable", "proxysql")
        assert code == 2 and "6099" in raw and len(raw.strip().splitlines()) == 1, raw
    finally:
        env.exec("proxysql", ["sh", "-c", "cat > /etc/proxysql.cnf"], stdin=original)


def test_disable_restores_files_variables_and_users(env):
    code, data, raw = h.role(env, "proxysql", "disable", "proxysql")
    assert code == 0, raw
    assert proxysql_snapshot(env) == RESULTS["proxysql_before"]
    for node in (primary(env), replica(env)):
        code, data, raw = h.role(env, node.name, "disable", "mysql")
        assert code == 0, raw
    wait_for(lambda: replica_fields(env).get("Slave_IO_Running") == "Yes", 60, "replication to resume")
    assert replica_ssl_fields(env) == RESULTS["replica_before"]
    sql(env, primary(env), "DROP USER IF EXISTS 'certuser'@'%'")
    sql(env, primary(env), "DROP DATABASE IF EXISTS my_tls_check")
    for node in (primary(env), replica(env)):
        assert state_of(env, node) == RESULTS["before"][node.name], node.name


def test_server_that_cannot_start_is_rolled_back(env):
    node = replica(env)
    before = state_of(env, node)
    key = h.CERT_DIR + "/server/server.key"
    env.exec(node.name, ["chown", "root:root", key])  # mysqld (user mysql) cannot read it any more
    try:
        code, data, raw = h.role(env, node.name, "enable", "mysql", "--stage", "offer")
        assert code == 2, raw
        assert len(raw.strip().splitlines()) == 1 and "restored" in raw, raw
        assert state_of(env, node) == before
    finally:
        env.exec(node.name, ["chown", "mysql:mysql", key])
    if os.environ.get("DBTLS_RESULTS_DIR"):
        path = os.path.join(os.environ["DBTLS_RESULTS_DIR"], f"mysql-{env.release}.json")
        with open(path, "w") as handle:
            json.dump({k: RESULTS[k] for k in ("version", "first_enable_restart", "reissue") if k in RESULTS},
                      handle, indent=1)
