"""Interrupted runs on the MySQL-family roles: MariaDB primary and replica, and ProxySQL.

The twin of test_hardening_kill.py for the mariadb-cluster topology. ``DBTLS_TEST_KILL_AFTER_STEP``
makes the agent SIGKILL itself right after a named step. For every step of ``enable`` and
``disable`` (role ``mysql`` on the primary and on the replica, role ``proxysql`` on the ProxySQL
node) and of the re-issue sequence (``csr --rotate``, ``ca sign``, ``install-certs``, then the
manifest's live swap ``enable --stage offer``), the test kills the run there, runs the same command
again, and compares with an uninterrupted run: the same config files (SHA-256), the same live
settings (MariaDB variables and replica channel, ProxySQL runtime and disk tables), the certificate
we installed is the one served, and the server accepts connections again within a deadline.

The ProxySQL node is the admin-interface TEST DOUBLE: it serves no MySQL traffic, so "served" there
is the frontend TLS context it loaded (``stats_double_tls``), as in test_manifest_mysql.py.
Environment ``<prefix>km-mariadb-cluster-<release>``; ``DBTLS_HARDENING_PREFIX`` (default hd)
lets several engineers run it side by side.
"""

from __future__ import annotations

import json
import os
from collections.abc import Iterator

import pytest
from hardening_helpers import (
    cert_fingerprint,
    issue_mysql_certificates,
    mysql_ok,
    proxysql_admin,
    reissue_server_cert,
    run_killed,
    served_mysql_fingerprint,
)
from harness import CERT_DIR, RELEASES, Env, sim_env, wait_for

PREFIX = os.environ.get("DBTLS_HARDENING_PREFIX", "hd")
MY_FILES = ["/etc/my.cnf", "/etc/mysql/conf.d/ssl-config.cnf"]
FRONTEND = [f"/var/lib/proxysql/proxysql-{n}.pem" for n in ("ca", "cert", "key")]
LIVE = "SELECT @@have_ssl, @@require_secure_transport, @@ssl_cert, @@ssl_key, @@ssl_ca, @@tls_version"
CHANNEL = ("Master_SSL_Allowed", "Master_SSL_CA_File", "Master_SSL_Verify_Server_Cert", "Master_Host")
PROXY_VARS = "('mysql-have_ssl', 'mysql-ssl_p2s_ca', 'mysql-ssl_p2s_cert', 'mysql-ssl_p2s_key')"
PROXY_TABLES = {
    "variables": f"SELECT variable_name, variable_value FROM runtime_global_variables WHERE variable_name IN "
                 f"{PROXY_VARS} ORDER BY 1",
    "disk variables": f"SELECT variable_name, variable_value FROM disk.global_variables WHERE variable_name IN "
                      f"{PROXY_VARS} ORDER BY 1",
    "servers": "SELECT hostgroup_id, hostname, port, use_ssl FROM runtime_mysql_servers ORDER BY 1, 2, 3",
    "disk servers": "SELECT hostgroup_id, hostname, port, use_ssl FROM disk.mysql_servers ORDER BY 1, 2, 3",
    "users": "SELECT username, backend, use_ssl FROM runtime_mysql_users ORDER BY 1, 2",
    "disk users": "SELECT username, backend, use_ssl FROM disk.mysql_users ORDER BY 1, 2",
    "served": "SELECT cert_sha256 FROM stats_double_tls",
}
ENABLE = ["preflight", "write-files", "apply", "verify", "replica", "require", "done"]
DISABLE = ["replica", "live-settings", "write-files", "apply", "done"]
STEPS = {
    ("primary", "enable"): ENABLE,
    # On the replica the "use" stage switches the channel, then waits until it runs over TLS.
    ("standby", "enable"): ENABLE[:4] + ["replica-channel"] + ENABLE[4:],
    ("primary", "disable"): DISABLE,
    ("standby", "disable"): DISABLE,
    ("proxysql", "enable"): ["preflight", "write-files", "apply", "done"],
    ("proxysql", "disable"): ["write-files", "apply", "done"],
}
CERT_STEPS = ["csr:server:key", "install-certs:server:root", "install-certs:server:key", "install-certs:server:cert"]
SWAP_STEPS = {"mysql": ["write-files", "apply", "verify"], "proxysql": ["write-files", "apply"]}
COVERED: list[str] = []


@pytest.fixture(scope="module", params=RELEASES)
def env(request, engine) -> Iterator[Env]:
    for e in sim_env("mariadb-cluster", request.param, f"{PREFIX}km"):
        issue_mysql_certificates(e)
        # A kept environment may still be enabled: ProxySQL first, then the replica, then the primary.
        for node in ("proxysql", "standby", "primary"):
            e.agent_json(node, "disable", "--role", role_of(node))
        e.state["original"] = {n: comparable(e, n) for n in ("primary", "standby", "proxysql")}
        yield e
        print(f"kill points covered: {len(COVERED)}: {', '.join(COVERED)}")


def role_of(node: str) -> str:
    return "proxysql" if node == "proxysql" else "mysql"


def command(node: str, what: str) -> list[str]:
    """What the manifest runs with requireTls set (stage all = offer, use, require in one run)."""
    return [what, "--role", role_of(node)] + (["--require-tls"] if what == "enable" else [])


def run_ok(env: Env, node: str, args: list[str], stdin: bytes | None = None) -> dict:
    proc = env.agent(node, *args, stdin=stdin)
    assert proc.returncode == 0, f"{node} {args}: {proc.stderr.decode()}"
    return json.loads(proc.stdout) if proc.stdout.strip().startswith(b"{") else {}


def journal(env: Env, node: str) -> dict:
    rc, out = env.exec(node, ["cat", f"{CERT_DIR}/.dbtls-state/{role_of(node)}.journal.json"])
    return json.loads(out) if rc == 0 else {}


def sql(env: Env, node: str, query: str, columns: bool = False) -> str:
    args = ["mariadb", "-uroot", "--batch"] + ([] if columns else ["--skip-column-names"])
    rc, out = env.exec(node, args + ["-e", query])
    assert rc == 0, out
    return out


def slave_status(env: Env) -> dict[str, str]:
    lines = sql(env, "standby", "SHOW SLAVE STATUS", columns=True).splitlines()
    return dict(zip(lines[0].split("\t"), lines[1].split("\t"), strict=False)) if len(lines) > 1 else {}


def channel(env: Env) -> dict[str, str]:
    """The replica channel's TLS options (and its source) from SHOW SLAVE STATUS."""
    row = slave_status(env)
    return {k: row.get(k, "") for k in CHANNEL}


def settings(env: Env, node: str) -> dict:
    """Everything but the certificate files: config files by SHA-256 and the live TLS settings."""
    if node == "proxysql":
        return {name: proxysql_admin(env, q) for name, q in PROXY_TABLES.items() if name != "served"}
    out = {"files": env.sha(node, MY_FILES), "live": sql(env, node, LIVE)}
    if node == "standby":
        out["channel"] = channel(env)
    return out


def comparable(env: Env, node: str) -> dict:
    """settings() plus what is served: the ProxySQL frontend files and the context it loaded."""
    out = settings(env, node)
    if node == "proxysql":
        out["frontend"] = env.sha(node, FRONTEND)
        out["served"] = proxysql_admin(env, PROXY_TABLES["served"])
    return out


def proxysql_served(env: Env) -> str:
    """The double's loaded frontend certificate as openssl prints a fingerprint."""
    hexed = proxysql_admin(env, PROXY_TABLES["served"]).strip().upper()
    return "sha256 Fingerprint=" + ":".join(hexed[i:i + 2] for i in range(0, len(hexed), 2))


def serving(env: Env, node: str, tls: bool) -> None:
    """The node is back: verify-full logins served with our certificate (tls) or plaintext logins."""
    if node == "proxysql":
        wait_for(lambda: proxysql_admin(env, "SELECT 1").strip() == "1", 60, "the ProxySQL admin interface")
        if tls:
            assert proxysql_served(env) == cert_fingerprint(env, node)
        return
    if tls:
        wanted = cert_fingerprint(env, node)
        wait_for(lambda: served_mysql_fingerprint(env, node) == wanted and mysql_ok(env, node), 90,
                 f"{node} serving {wanted}")
    else:
        wait_for(lambda: mysql_ok(env, node, tls=False), 90, f"{node} accepting plaintext")


def kill_and_rerun(env: Env, node: str, what: str, reference: dict) -> None:
    args = command(node, what)
    for step in STEPS[(node, what)]:
        run_killed(env, node, args, step)
        assert journal(env, node).get("finished") is False or step == "done", step
        again = env.agent(node, *args)
        assert again.returncode == 0, f"rerun after kill at {what}:{step}: {again.stderr.decode()}"
        assert journal(env, node)["finished"] is True
        now = comparable(env, node)
        assert now == reference, f"{node} {what} killed after {step}: {now} != {reference}"
        serving(env, node, what == "enable")
        COVERED.append(f"{role_of(node)} {node} {what} {step}")
        # Back to where this command starts, by an uninterrupted run of the opposite command.
        run_ok(env, node, command(node, "disable" if what == "enable" else "enable"))


def enable_and_disable_survive_every_kill(env: Env, node: str) -> None:
    run_ok(env, node, command(node, "enable"))
    enabled = comparable(env, node)
    serving(env, node, True)
    run_ok(env, node, command(node, "disable"))
    assert comparable(env, node) == env.state["original"][node], "an uninterrupted disable is not a full undo"
    kill_and_rerun(env, node, "enable", enabled)
    run_ok(env, node, command(node, "enable"))
    kill_and_rerun(env, node, "disable", env.state["original"][node])


def test_primary_enable_and_disable_survive_every_kill(env):
    enable_and_disable_survive_every_kill(env, "primary")
    # The replica's plaintext channel is refused while the primary requires TLS; the next tests
    # need the cluster order's first stage instead: the primary offers TLS and accepts both.
    run_ok(env, "primary", command("primary", "disable"))
    run_ok(env, "primary", ["enable", "--role", "mysql", "--stage", "offer"])
    sql(env, "standby", "STOP SLAVE; START SLAVE")
    wait_for(lambda: slave_status(env).get("Slave_IO_Running") == "Yes", 90, "the replica's channel running again")


def test_replica_enable_and_disable_survive_every_kill(env):
    assert channel(env)["Master_SSL_Allowed"] == "No", "the replica must start from a plaintext channel"
    enable_and_disable_survive_every_kill(env, "standby")
    run_ok(env, "standby", command("standby", "enable"))
    assert channel(env)["Master_SSL_CA_File"] == f"{CERT_DIR}/server/root.crt"


def test_proxysql_enable_and_disable_survive_every_kill(env):
    enable_and_disable_survive_every_kill(env, "proxysql")
    run_ok(env, "proxysql", command("proxysql", "enable"))


def reissue(env: Env, node: str, kill: str | None) -> str:
    """The manifest's server re-issue for ``node`` with an optional kill (and re-run) at one step:
    a certificate step, or ``swap:<step>`` of the live swap (``enable --stage offer``)."""
    signed = reissue_server_cert(env, node, kill)
    swap = ["enable", "--role", role_of(node), "--stage", "offer"]  # what the manifest runs, without --require-tls
    if kill and kill.startswith("swap:"):
        run_killed(env, node, swap, kill[len("swap:"):])
    result = run_ok(env, node, swap)
    if node != "proxysql":
        assert result["apply"] in ("FLUSH SSL", "none"), result  # a live swap, never a restart
    return signed.decode().split("-----END CERTIFICATE-----")[0] + "-----END CERTIFICATE-----\n"


@pytest.mark.parametrize("node", ["primary", "standby", "proxysql"])
def test_reissue_survives_every_kill(env, node):
    before = settings(env, node)
    steps = CERT_STEPS + [f"swap:{s}" for s in SWAP_STEPS[role_of(node)]]
    for step in [None] + steps:
        cert = reissue(env, node, step)
        rc, installed = env.exec(node, ["cat", f"{CERT_DIR}/server/server.crt"])
        assert installed == cert, f"kill at {step}: the signed certificate is not the installed one"
        server = next(c for c in env.agent_json(node, "inspect")["certificates"] if c["role"] == "server")
        assert server["key_matches_cert"] is True, step
        rc, out = env.exec(node, ["bash", "-c", f"ls -A {CERT_DIR}/.pending {CERT_DIR}/server; "
                                  f"find {CERT_DIR} -name '*.tmp'"])
        assert out.split() == [f"{CERT_DIR}/.pending:", f"{CERT_DIR}/server:", "root.crt", "server.crt",
                               "server.key"], out
        assert settings(env, node) == before, f"re-issue killed at {step} changed the settings"
        serving(env, node, True)
        if node == "proxysql":
            rc, leaf = env.exec(node, ["cat", FRONTEND[1]])
            assert leaf == cert, step
        if step:
            COVERED.append(f"re-issue {node} {step}")
