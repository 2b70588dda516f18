"""enable/disable --role postgres|pgpool on a real primary, standby and Pgpool-II, checked with psql.

The tests run in file order on one environment of their own: certificates, bad input, enable under
a client loop, the checks from the client container, a second enable, pool_passwd, then disable.
"""

from __future__ import annotations

import hashlib
import json
import subprocess
import time

import pytest
from agent_helpers import CERT_DIR, agent, agent_json, container_name, issue_certificates
from harness import docker_exec, exec_argv

PG_FILES = ["/var/lib/pgsql/data/postgresql.conf", "/var/lib/pgsql/data/pg_hba.conf",
            "/var/lib/pgsql/data/postgresql.auto.conf"]
POOL_FILES = ["/etc/pgpool-II/pgpool.conf", "/etc/pgpool-II/pool_hba.conf", "/etc/pgpool-II/pool_passwd",
              "/var/lib/pgsql/.pgpoolkey"]
ROOT = "/tmp/root.crt"
STATE = {}  # shared across the ordered tests of this module


def sha(env, container: str, path: str) -> str | None:
    proc = docker_exec(container, ["cat", path])
    return hashlib.sha256(proc.stdout).hexdigest() if proc.returncode == 0 else None


def client_psql(env, conninfo: str, sql: str, password: str) -> tuple[int, str]:
    return env.exec("client", ["psql", "-XAtq", "-d", conninfo, "-c", sql], env={"PGPASSWORD": password})


def full(host: str, user: str = "webadmin") -> str:
    return f"host={host} user={user} dbname=postgres sslmode=verify-full sslrootcert={ROOT} connect_timeout=5"


@pytest.fixture(scope="module")
def env(pg_tls_cluster):
    e = pg_tls_cluster
    names = {"primary": container_name(e, "postgres", 0), "standby": container_name(e, "postgres", 1),
             "pgpool": container_name(e, "pgpool")}
    primary = next(n for n in e.nodes if n.role == "postgres" and n.is_master)
    if primary.name != names["primary"]:
        names["primary"], names["standby"] = primary.name, names["primary"]
    e.names = names
    e.host = {k: next(n.hostname for n in e.nodes if n.name == v) for k, v in names.items()}
    e.ip = {k: next(n.ip for n in e.nodes if n.name == v) for k, v in names.items()}
    root = issue_certificates(e, names["primary"], list(names.values()))
    rc, out = e.exec("client", ["sh", "-c", f"cat > {ROOT}"], stdin=root.encode())
    assert rc == 0, out
    e.pw = {"webadmin": e.secrets["WEBADMIN_PASSWORD"], "pgpool": e.secrets["PGPOOL_PASSWORD"],
            "replication": e.secrets["REPL_PASSWORD"]}
    e.before = {(n, p): sha(e, c, p) for n, c in names.items()
                for p in (POOL_FILES if n == "pgpool" else PG_FILES)}
    return e


def run_json(env, node: str, *args: str, passwords: bool = False) -> dict:
    stdin = json.dumps(env.pw).encode() if passwords else None
    args = args + (("--passwords-stdin",) if passwords else ())
    return agent_json(env, env.names[node], *args, stdin=stdin)


def test_bad_input_changes_nothing(env):
    wrong = json.dumps({"webadmin": "not-the-password"}).encode()
    cases = [
        (env.names["primary"], ["enable", "--role", "postgres", "--passwords-stdin"], wrong, "does not match"),
        (env.names["pgpool"], ["enable", "--role", "postgres"], None, "PostgreSQL"),
        (env.names["primary"], ["enable", "--role", "postgres", "--cert-dir", "/nonexistent"], None, "missing"),
        (env.names["pgpool"], ["enable", "--role", "pgpool", "--passwords-stdin"], wrong, "does not match"),
    ]
    for container, args, stdin, needle in cases:
        proc = agent(env, container, *args, stdin=stdin)
        err = proc.stderr.decode().strip()
        print(args, "->", err)
        assert proc.returncode == 2 and len(err.splitlines()) == 1 and needle in err, err
    after = {k: sha(env, env.names[k[0]], k[1]) for k in env.before}
    assert after == env.before


def _start_client_loop(env, deadline_s: int = 600) -> subprocess.Popen:
    """New connection per query every ~10 ms to both postgres nodes and Pgpool, until /tmp/stop."""
    hosts = " ".join(env.host[k] for k in ("primary", "standby", "pgpool"))
    script = f"""
rm -f /tmp/stop /tmp/loop.log; end=$((SECONDS+{deadline_s}))
while [ ! -f /tmp/stop ] && [ $SECONDS -lt $end ]; do
  for h in {hosts}; do
    if psql -XAtq -c 'select 1' "host=$h user=webadmin dbname=postgres sslmode=prefer connect_timeout=5" >/dev/null 2>>/tmp/loop.err
    then echo "$(date +%s%3N) $h ok" >> /tmp/loop.log; else echo "$(date +%s%3N) $h fail" >> /tmp/loop.log; fi
  done
  sleep 0.01
done
"""
    client = container_name(env, "client")
    return subprocess.Popen(exec_argv(client, ["bash", "-c", script], env={"PGPASSWORD": env.pw["webadmin"]},
                                      stdin=False))


def _loop_report(env) -> dict:
    rc, out = env.exec("client", ["cat", "/tmp/loop.log"])
    rows = [line.split() for line in out.splitlines() if line.count(" ") == 2]
    report = {}
    for key in ("primary", "standby", "pgpool"):
        mine = [(int(t), r) for t, h, r in rows if h == env.host[key]]
        fails = [t for t, r in mine if r == "fail"]
        gap = 0
        if fails:
            before = max([t for t, r in mine if r == "ok" and t < fails[0]], default=fails[0])
            after = min([t for t, r in mine if r == "ok" and t > fails[-1]], default=fails[-1])
            gap = after - before
        report[key] = {"queries": len(mine), "failed": len(fails), "gap_ms": gap}
    return report


def test_enable_in_cluster_order_without_failed_queries(env):
    rc, _ = env.exec(env.names["primary"], ["runuser", "-u", "postgres", "--", "psql", "-h", "/var/run/postgresql", "-c",
                                 "SET password_encryption='md5'; CREATE ROLE legacy_md5 LOGIN PASSWORD 'legacy-pw'"])
    assert rc == 0
    loop = _start_client_loop(env)
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline and env.exec("client", ["test", "-s", "/tmp/loop.log"])[0] != 0:
        time.sleep(0.05)
    pgpool_ip = env.ip["pgpool"]
    STATE["offer"] = run_json(env, "primary", "enable", "--role", "postgres", "--stage", "offer", passwords=True)
    run_json(env, "standby", "enable", "--role", "postgres", "--stage", "offer", passwords=True)
    STATE["use"] = run_json(env, "standby", "enable", "--role", "postgres", "--stage", "use")
    STATE["pool_offer"] = run_json(env, "pgpool", "enable", "--role", "pgpool", "--stage", "offer", passwords=True)
    run_json(env, "pgpool", "enable", "--role", "pgpool", "--stage", "require")
    for node in ("primary", "standby"):
        STATE[f"require-{node}"] = run_json(env, node, "enable", "--role", "postgres", "--stage", "require",
                                            "--no-client-cert-address", pgpool_ip, passwords=True)
    env.exec("client", ["touch", "/tmp/stop"])
    loop.wait(timeout=120)
    report = _loop_report(env)
    print("client loop during enable:", json.dumps(report))
    print("pgpool action:", STATE["pool_offer"]["action"], "version", STATE["pool_offer"]["version"])
    assert report["primary"]["failed"] == 0 and report["standby"]["failed"] == 0
    assert report["primary"]["queries"] > 10
    assert STATE["offer"]["action"] == "reload" and STATE["pool_offer"]["action"] == "restart"
    assert "legacy_md5" in STATE["offer"]["md5_roles"] and "webadmin" in STATE["offer"]["rehash_at_require"]
    assert STATE["offer"]["rehashed"] == [] and "webadmin" in STATE["require-primary"]["rehashed"]
    # The standby applied the new secret before the primary's logins saw it (Pgpool never sees them disagree).
    assert STATE["require-primary"]["rehash_synchronous"] == "every streaming standby applied it first"
    assert "legacy_md5" in STATE["require-primary"]["md5_roles"]
    assert STATE["use"]["replication"][0]["status"] == "streaming"


@pytest.mark.parametrize("node", ["primary", "standby", "pgpool"])
def test_verify_full_and_plaintext_refused(env, node):
    rc, out = client_psql(env, full(env.host[node]),
                          "SELECT ssl::text || ' ' || version FROM pg_stat_ssl WHERE pid = pg_backend_pid()",
                          env.pw["webadmin"])
    assert rc == 0, out
    assert out.split()[0] == "true" and out.split()[1] in ("TLSv1.2", "TLSv1.3"), out
    rc, out = client_psql(env, f"host={env.host[node]} user=webadmin dbname=postgres sslmode=disable",
                          "select 1", env.pw["webadmin"])
    assert rc != 0, out


def test_replication_streams_over_tls(env):
    rc, out = client_psql(env, full(env.host["primary"]),
                          "SELECT r.state || ' ' || s.ssl::text FROM pg_stat_replication r JOIN pg_stat_ssl s USING (pid)",
                          env.pw["webadmin"])
    assert rc == 0 and out.strip() == "streaming true", out


def test_second_enable_changes_nothing(env):
    pid_before = env.exec(env.names["pgpool"], ["cat", "/var/run/pgpool/pgpool.pid"])[1]
    for node in ("primary", "standby"):
        result = run_json(env, node, "enable", "--role", "postgres", "--no-client-cert-address", env.ip["pgpool"],
                          passwords=True)
        assert result["changed"] is False and result["action"] == "none", result
    result = run_json(env, "pgpool", "enable", "--role", "pgpool", passwords=True)
    assert result["changed"] is False and result["action"] == "none", result
    assert env.exec(env.names["pgpool"], ["cat", "/var/run/pgpool/pgpool.pid"])[1] == pid_before


def test_status_reports_served_certificate(env):
    for node in ("primary", "pgpool"):
        status = run_json(env, node, "status")
        assert status["enabled"] and status["tls"]["ok"], status
        assert status["tls"]["sha256"] == status["tls"]["expected_sha256"]
        assert any(c.get("role") == "server" for c in status["certificates"])


def test_pool_passwd_native_matches_pg_enc_and_logs_in(env):
    password = "Al1ce-secret:x"
    rc, out = client_psql(env, full(env.host["primary"]), f"CREATE ROLE alice LOGIN PASSWORD '{password}'; "
                          f"CREATE ROLE bob LOGIN PASSWORD '{password}'", env.pw["webadmin"])
    assert rc == 0, out
    native = agent_json(env, env.names["pgpool"], "pool-passwd", "set", "alice", stdin=password.encode())
    if tuple(int(p) for p in STATE["pool_offer"]["version"].split(".")[:2]) < (4, 2):
        # pg_enc 4.0/4.1 has no -i: refused in one line, nothing changed; bob gets the native entry.
        before = sha(env, env.names["pgpool"], "/etc/pgpool-II/pool_passwd")
        proc = agent(env, env.names["pgpool"], "pool-passwd", "set", "bob", "--backend", "pg_enc",
                     stdin=password.encode())
        err = proc.stderr.decode().strip()
        assert proc.returncode == 2 and len(err.splitlines()) == 1 and "--backend native" in err, err
        assert sha(env, env.names["pgpool"], "/etc/pgpool-II/pool_passwd") == before
        wrapped = agent_json(env, env.names["pgpool"], "pool-passwd", "set", "bob", stdin=password.encode())
    else:
        wrapped = agent_json(env, env.names["pgpool"], "pool-passwd", "set", "bob", "--backend", "pg_enc",
                             stdin=password.encode())
    assert native["action"] == wrapped["action"] == "reload"
    _, text = env.exec(env.names["pgpool"], ["cat", "/etc/pgpool-II/pool_passwd"])
    entries = dict(line.split(":", 1) for line in text.splitlines() if ":" in line)
    assert entries["alice"].startswith("AES") and entries["alice"] == entries["bob"]  # pg_enc byte for byte
    deadline = time.monotonic() + 20
    while True:
        rc, out = client_psql(env, full(env.host["pgpool"], "alice"), "select current_user", password)
        if rc == 0 or time.monotonic() > deadline:
            break
        time.sleep(0.2)
    assert rc == 0 and out.strip() == "alice", out


def test_disable_restores_every_file_and_plaintext_works(env):
    for node in ("primary", "standby"):
        result = run_json(env, node, "disable", "--role", "postgres")
        assert result["action"] == "reload", result
        if node == "primary":
            assert result["secrets_synchronous"] == "every streaming standby applied it first", result
    result = run_json(env, "pgpool", "disable", "--role", "pgpool")
    assert result["action"] == "restart", result
    after = {k: sha(env, env.names[k[0]], k[1]) for k in env.before}
    assert after == env.before
    for node in ("primary", "pgpool"):
        deadline = time.monotonic() + 30
        while True:
            rc, out = client_psql(env, f"host={env.host[node]} user=webadmin dbname=postgres sslmode=disable",
                                  "select 1", env.pw["webadmin"])
            if rc == 0 or time.monotonic() > deadline:
                break
            time.sleep(0.2)
        assert rc == 0, (node, out)
    rc, out = env.exec(env.names["pgpool"], ["ls", CERT_DIR + "/server"])
    assert rc == 0  # certificates stay without --remove-certs
