"""The edges of enable/disable --role postgres|pgpool against real servers.

Two environments of their own (prefix ``edge``): a standalone PostgreSQL node (topology ``pg``) for
rollback, bad input, ALTER SYSTEM, --keep-md5-compat and --client-cert-auth; and a ``pg-cluster``
for client loops during the staged enable, the Pgpool restart gap and client certificates next to
Pgpool. Tests of one environment run in file order and hand state on through the fixture object.
"""

from __future__ import annotations

import json
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from agent_helpers import CERT_DIR, agent, agent_json, issue_certificates
from harness import RELEASES, Env, agent_argv, docker_exec, exec_argv, sim_env

DATA = "/var/lib/pgsql/data"
PG_FILES = [f"{DATA}/postgresql.conf", f"{DATA}/pg_hba.conf", f"{DATA}/postgresql.auto.conf"]
POOL_FILES = ["/etc/pgpool-II/pgpool.conf", "/etc/pgpool-II/pool_hba.conf", "/etc/pgpool-II/pool_passwd",
              "/var/lib/pgsql/.pgpoolkey"]
CC = "/tmp/edge-cc"  # client container: root.crt, client.crt, client.key
LOOP = "/tmp/pg_client_loop.py"
LOOP_SRC = Path(__file__).with_name("pg_client_loop.py")


class EdgeEnv(Env):
    """The harness environment plus SQL, psql from the client, file access and the agent with passwords."""

    def sql(self, node: str, sql: str) -> str:
        """SQL as the postgres OS user over the node's socket (peer auth); asserts success."""
        rc, out = self.exec(node, ["runuser", "-u", "postgres", "--", "psql", "-h", "/var/run/postgresql",
                                   "-XAtq", "-v", "ON_ERROR_STOP=1", "-f", "-"], stdin=sql.encode())
        assert rc == 0, out
        return out.strip()

    def client(self, conninfo: str, sql: str, password: str | None = None) -> tuple[int, str]:
        env = {"PGPASSWORD": password} if password is not None else {}
        return self.exec("client", ["psql", "-XAtq", "-d", conninfo, "-c", sql], env=env)

    def read(self, node: str, path: str) -> bytes:
        return docker_exec(self.c[node], ["cat", path], check=True).stdout

    def write(self, node: str, path: str, data: bytes) -> None:
        """Overwrite in place (``cat >``), so owner and mode stay as they are."""
        rc, out = self.exec(node, ["sh", "-c", f"cat > {path}"], stdin=data)
        assert rc == 0, out

    def agent(self, node: str, *args: str, passwords: dict[str, str] | None = None,
              extra_env: dict[str, str] | None = None) -> subprocess.CompletedProcess:
        stdin = json.dumps(passwords).encode() if passwords is not None else None
        args = args + (("--passwords-stdin",) if passwords is not None else ())
        return agent(self, self.c[node], *args, stdin=stdin, extra_env=extra_env)

    def agent_json(self, node: str, *args: str, passwords: dict[str, str] | None = None) -> dict:
        stdin = json.dumps(passwords).encode() if passwords is not None else None
        args = args + (("--passwords-stdin",) if passwords is not None else ())
        return agent_json(self, self.c[node], *args, stdin=stdin)


def conn(env: EdgeEnv, node: str, user: str = "webadmin", mode: str = "verify-full", cert: bool = False,
         extra: str = "") -> str:
    text = (f"host={env.host[node]} user={user} dbname=postgres sslmode={mode} sslrootcert={CC}/root.crt "
            f"connect_timeout=5")
    if cert:
        text += f" sslcert={CC}/client.crt sslkey={CC}/client.key"
    return text + (" " + extra if extra else "")


def one_line_error(proc: subprocess.CompletedProcess, needle: str) -> str:
    err = proc.stderr.decode().strip()
    assert proc.returncode == 2, (proc.returncode, err, proc.stdout.decode())
    assert len(err.splitlines()) == 1 and err.startswith("dbtls-agent: error: "), err
    assert needle in err, err
    return err


def wait_for(check, timeout: float, interval: float = 0.2):
    deadline = time.monotonic() + timeout
    value = check()
    while not value and time.monotonic() < deadline:
        time.sleep(interval)
        value = check()
    return value


def _up(topology: str, release: str) -> Iterator[EdgeEnv]:
    for env in sim_env(topology, release, "edge", EdgeEnv):
        targets = [c for k, c in env.c.items() if k != "client"]
        root = issue_certificates(env, env.c["primary"], targets)
        # The client container gets root.crt and the webadmin client certificate of the primary.
        env.exec("client", ["mkdir", "-p", "-m", "0700", CC])
        env.write("client", f"{CC}/root.crt", root.encode())
        for name_ in ("client.crt", "client.key"):
            env.write("client", f"{CC}/{name_}", env.read("primary", f"{CERT_DIR}/client/{name_}"))
        env.exec("client", ["chmod", "0600", f"{CC}/client.key"])
        subprocess.run(["docker", "cp", str(LOOP_SRC), f"{env.c['client']}:{LOOP}"], check=True)
        env.before = {k: env.sha(k, POOL_FILES if k == "pgpool" else PG_FILES) for k in env.c if k != "client"}
        yield env


@pytest.fixture(scope="module", params=RELEASES)
def single(request, engine) -> Iterator[EdgeEnv]:
    yield from _up("pg", request.param)


@pytest.fixture(scope="module", params=RELEASES)
def cl(request, engine) -> Iterator[EdgeEnv]:
    yield from _up("pg-cluster", request.param)


def all_shas(env: EdgeEnv) -> dict:
    return {k: env.sha(k, POOL_FILES if k == "pgpool" else PG_FILES) for k in env.c if k != "client"}


def plaintext_login_works(env: EdgeEnv, node: str = "primary") -> tuple[int, str]:
    return env.client(conn(env, node, mode="disable"), "select 1", env.pw["webadmin"])


# --- client loops ----------------------------------------------------------------------------------

class Loop:
    """pg_client_loop.py running in the client container (started with ``docker exec``)."""

    def __init__(self, env: EdgeEnv, tag: str, mode: str, conninfo: str, deadline: float = 300,
                 max_count: int = 60000) -> None:
        self.env, self.tag = env, tag
        self.stop_file, self.ready = f"/tmp/{tag}.stop", f"/tmp/{tag}.ready"
        env.exec("client", ["rm", "-f", self.stop_file, self.ready])
        argv = exec_argv(env.c["client"], ["python3", LOOP, "--mode", mode, "--conninfo", conninfo, "--interval", "0.01",
                                           "--deadline", str(deadline), "--max-count", str(max_count),
                                           "--stop-file", self.stop_file, "--ready-file", self.ready],
                         env={"PGPASSWORD": env.pw["webadmin"]}, stdin=False)
        self.proc = subprocess.Popen(argv, stdout=subprocess.PIPE, stderr=subprocess.PIPE)

    def wait_ready(self, timeout: float = 30) -> None:
        ok = wait_for(lambda: self.proc.poll() is not None or self.env.exec("client", ["test", "-e", self.ready])[0] == 0,
                      timeout, 0.05)
        assert ok and self.proc.poll() is None, f"{self.tag} did not start: {self.proc.communicate()}"

    def stop(self) -> dict:
        self.env.exec("client", ["touch", self.stop_file])
        out, err = self.proc.communicate(timeout=120)
        assert self.proc.returncode == 0, err.decode()
        return json.loads(out.decode().strip().splitlines()[-1])


# === standalone node =================================================================================

def test_bad_input_is_one_line_and_changes_nothing(single):
    env = single
    conf, hba = PG_FILES[0], PG_FILES[1]
    pw = env.pw
    # 1. An unparsable line in postgresql.conf (the server has not read it yet: no reload happens).
    original = env.read("primary", conf)
    env.write("primary", conf, original + b"ssl = = 'on\n")
    try:
        broken = env.sha("primary", PG_FILES)
        err = one_line_error(env.agent("primary", "enable", "--role", "postgres", passwords=pw), "postgresql.conf line")
        print("unparsable line ->", err)
        assert env.sha("primary", PG_FILES) == broken
    finally:
        env.write("primary", conf, original)
    # 2. The server's pg_hba.conf is gone (moved away; the running server keeps its loaded rules).
    env.exec("primary", ["mv", hba, hba + ".edge"])
    try:
        err = one_line_error(env.agent("primary", "enable", "--role", "postgres", passwords=pw), "does not exist")
        print("missing pg_hba.conf ->", err)
        assert env.exec("primary", ["test", "-e", hba])[0] != 0
    finally:
        env.exec("primary", ["mv", hba + ".edge", hba])
    # 3. A read-only postgresql.conf. Root writes through any mode bit and containers allow neither
    #    chattr nor read-only bind mounts, so the agent runs as the file's owner (postgres) on a file
    #    made 0400, with a certificate directory it can use.
    rc, out = env.exec("primary", ["sh", "-c", f"rm -rf /tmp/edge-certs && cp -a {CERT_DIR} /tmp/edge-certs && "
                                   f"chown -R postgres /tmp/edge-certs && chmod 0400 {conf}"])
    assert rc == 0, out
    try:
        proc = subprocess.run(agent_argv(env.c["primary"], "enable", "--role", "postgres", "--cert-dir",
                                         "/tmp/edge-certs", "--passwords-stdin", user="postgres"),
                              input=json.dumps(pw).encode(), capture_output=True, timeout=300)
        err = one_line_error(proc, "not writable")
        print("read-only postgresql.conf ->", err)
    finally:
        env.exec("primary", ["sh", "-c", f"chmod 0600 {conf}; rm -rf /tmp/edge-certs"])
    # 4. The server is not running.
    rc, out = env.exec("primary", ["jem", "service", "stop"])
    assert rc == 0, out
    try:
        err = one_line_error(env.agent("primary", "enable", "--role", "postgres", passwords=pw), "not running")
        print("server stopped ->", err)
    finally:
        rc, out = env.exec("primary", ["jem", "service", "start"])
        assert rc == 0, out
    assert wait_for(lambda: plaintext_login_works(env)[0] == 0, 60)
    assert all_shas(env) == env.before


def _swap_key(env: EdgeEnv, new_key: bytes | None) -> bytes:
    path = f"{CERT_DIR}/server/server.key"
    old = env.read("primary", path)
    if new_key is not None:
        env.write("primary", path, new_key)
    return old


def _assert_rolled_back(env: EdgeEnv, proc: subprocess.CompletedProcess, needle: str) -> str:
    err = one_line_error(proc, needle)
    assert all_shas(env) == env.before, "configuration files not restored byte for byte"
    assert env.sql("primary", "SELECT 1") == "1"  # still running
    md5 = env.sql("primary", "SELECT rolname FROM pg_authid WHERE rolpassword LIKE 'md5%' ORDER BY 1")
    assert "webadmin" in md5.split(), md5  # the re-hash done for this run was given back
    rc, out = plaintext_login_works(env)
    assert rc == 0, out
    # The rollback reloaded the original files: TLS is off again, as before the run.
    rc, out = env.client(conn(env, "primary", mode="require"), "select 1", env.pw["webadmin"])
    assert rc != 0 and "SSL" in out, out
    return err


def test_key_mismatch_is_rolled_back(single):
    env = single
    rc, other_key = env.exec("primary", ["openssl", "genpkey", "-algorithm", "RSA", "-pkeyopt", "rsa_keygen_bits:2048"])
    assert rc == 0 and "PRIVATE KEY" in other_key
    good = _swap_key(env, other_key.encode())
    try:
        started = time.monotonic()
        proc = env.agent("primary", "enable", "--role", "postgres", passwords=env.pw)
        took = time.monotonic() - started
        err = _assert_rolled_back(env, proc, "SSL configuration was not reloaded")
        print(f"key mismatch -> ({took:.1f}s) {err}")
    finally:
        _swap_key(env, good)


def test_bad_cipher_list_is_rolled_back(single):
    """A value PostgreSQL accepts in pg_file_settings but cannot load: ssl_ciphers (monkeypatched)."""
    env = single
    code = ("import sys; from dbtls_agent.roles.postgres import role as postgres; postgres.CIPHERS = 'NO-SUCH-CIPHER'; "
            "from dbtls_agent.cli import main; sys.exit(main(sys.argv[1:]))")
    proc = subprocess.run(agent_argv(env.c["primary"], "enable", "--role", "postgres", "--passwords-stdin",
                                     python_args=("-c", code)),
                          input=json.dumps(env.pw).encode(), capture_output=True, timeout=300)
    err = _assert_rolled_back(env, proc, "SSL configuration was not reloaded")
    print("bad ssl_ciphers ->", err)


def test_hostile_include_is_refused_before_reload(single):
    """An include file with a syntax error: pg_file_settings reports it, nothing is reloaded."""
    env = single
    conf = PG_FILES[0]
    original = env.read("primary", conf)
    rc, out = env.exec("primary", ["sh", "-c", f"printf 'ssl = on\\nthis is not a setting\\n' > {DATA}/edge-hostile.conf"
                                   f" && chown postgres: {DATA}/edge-hostile.conf"])
    assert rc == 0, out
    env.write("primary", conf, original + b"include 'edge-hostile.conf'\n")
    try:
        with_include = env.sha("primary", PG_FILES)
        load_before = env.sql("primary", "SELECT pg_conf_load_time()")
        proc = env.agent("primary", "enable", "--role", "postgres", passwords=env.pw)
        err = one_line_error(proc, "edge-hostile.conf")
        print("hostile include ->", err)
        assert env.sha("primary", PG_FILES) == with_include
        assert env.sql("primary", "SELECT pg_conf_load_time()") == load_before  # nothing reloaded
    finally:
        env.write("primary", conf, original)
        env.exec("primary", ["rm", "-f", f"{DATA}/edge-hostile.conf"])
    assert all_shas(env) == env.before


def test_enable_under_persistent_and_fresh_loops(single):
    env = single
    env.sql("primary", "SET password_encryption = 'md5'; CREATE ROLE edge_md5 LOGIN PASSWORD 'md5-only-pw'")
    loops = [Loop(env, "single-persistent", "persistent", conn(env, "primary", mode="prefer")),
             Loop(env, "single-fresh", "fresh", conn(env, "primary", mode="prefer"))]
    for loop in loops:
        loop.wait_ready()
    result = env.agent_json("primary", "enable", "--role", "postgres", passwords=env.pw)
    reports = [loop.stop() for loop in loops]
    for report in reports:
        print("standalone loop during enable:", json.dumps(report))
    assert result["action"] == "reload" and result["verify"]["ok"], result
    for report in reports:
        assert report["failed"] == 0 and report["queries"] >= 5, report
    assert reports[1]["tls_answers"] > 0  # fresh connections switched to TLS during the run
    assert "edge_md5" in result["md5_roles"], result
    env.state["enabled"] = result


def test_second_enable_changes_nothing(single):
    env = single
    load_before = env.sql("primary", "SELECT pg_conf_load_time()")
    result = env.agent_json("primary", "enable", "--role", "postgres", passwords=env.pw)
    assert result["changed"] is False and result["action"] == "none", result
    assert env.sql("primary", "SELECT pg_conf_load_time()") == load_before


def test_md5_role_keeps_logging_in_and_keep_md5_compat_still_works(single):
    env = single
    md5_login = conn(env, "primary", user="edge_md5")
    # The default enable gave the md5 role a hostssl ... md5 rule of its own (reported in md5_rules).
    assert "edge_md5" in env.state["enabled"]["md5_rules"], env.state["enabled"]
    rc, out = env.client(md5_login, "SELECT ssl::text FROM pg_stat_ssl WHERE pid = pg_backend_pid()", "md5-only-pw")
    assert rc == 0 and out.strip() == "true", out
    result = env.agent_json("primary", "enable", "--role", "postgres", "--keep-md5-compat", passwords=env.pw)
    assert result["changed"] and "edge_md5" in result["md5_roles"], result
    rc, out = env.client(md5_login, "SELECT ssl::text || ' ' || version FROM pg_stat_ssl WHERE pid = pg_backend_pid()",
                         "md5-only-pw")
    assert rc == 0 and out.split()[0] == "true" and out.split()[1] in ("TLSv1.2", "TLSv1.3"), out
    rc, out = env.client(conn(env, "primary"), "select 1", env.pw["webadmin"])  # scram-hashed webadmin too
    assert rc == 0, out
    rc, out = env.client(conn(env, "primary", user="edge_md5", mode="disable"), "select 1", "md5-only-pw")
    assert rc != 0, out  # md5 still only over TLS


def test_client_cert_auth_standalone(single):
    env = single
    result = env.agent_json("primary", "enable", "--role", "postgres", "--client-cert-auth", passwords=env.pw)
    assert result["changed"] and result["action"] == "reload", result
    rules = env.sql("primary", "SELECT type || ' ' || array_to_string(database, ',') || ' ' || auth_method "
                               "FROM pg_hba_file_rules WHERE address = '0.0.0.0' ORDER BY line_number")
    print("remote rules with --client-cert-auth:", rules.replace("\n", " | "))
    assert "hostssl all cert" in rules and "host " not in rules, rules
    rc, out = env.client(conn(env, "primary", cert=True),
                         "SELECT current_user || ' ' || ssl::text || ' ' || coalesce(client_dn, '') "
                         "FROM pg_stat_ssl WHERE pid = pg_backend_pid()")  # no password at all
    assert rc == 0 and out.startswith("webadmin true"), out
    rc, out = env.client(conn(env, "primary"), "select 1", env.pw["webadmin"])
    assert rc != 0 and "certificate" in out, out  # the right password without a certificate: refused
    rc, out = env.client(conn(env, "primary", user="edge_md5", cert=True), "select 1", "md5-only-pw")
    assert rc != 0, out  # a webadmin certificate is not edge_md5's


def test_disable_restores_every_file(single):
    env = single
    result = env.agent_json("primary", "disable", "--role", "postgres")
    assert result["action"] == "reload", result
    assert all_shas(env) == env.before
    rc, out = plaintext_login_works(env)
    assert rc == 0, out
    rc, out = env.client(conn(env, "primary", user="edge_md5", mode="disable"), "select 1", "md5-only-pw")
    assert rc == 0, out


def test_alter_system_override_is_reset_and_restored(single):
    env = single
    env.sql("primary", "ALTER SYSTEM SET ssl_min_protocol_version = 'TLSv1'")
    env.sql("primary", "ALTER SYSTEM SET ssl = off")
    env.sql("primary", "SELECT pg_reload_conf()")
    auto_before = env.read("primary", PG_FILES[2])
    try:
        result = env.agent_json("primary", "enable", "--role", "postgres", passwords=env.pw)
        print("alter_system_reset:", result["alter_system_reset"])
        assert set(result["alter_system_reset"]) == {"ssl", "ssl_min_protocol_version"}, result
        assert env.sql("primary", "SHOW ssl_min_protocol_version") == "TLSv1.2"
        assert env.sql("primary", "SHOW ssl") == "on"
        rc, out = env.client(conn(env, "primary"), "SELECT version FROM pg_stat_ssl WHERE pid = pg_backend_pid()",
                             env.pw["webadmin"])
        assert rc == 0 and out.strip() in ("TLSv1.2", "TLSv1.3"), out
        rc, out = env.client(conn(env, "primary", extra="ssl_max_protocol_version=TLSv1.1"), "select 1",
                             env.pw["webadmin"])
        assert rc != 0, out  # the server's floor really is TLSv1.2 (client offers at most 1.1)
        result = env.agent_json("primary", "disable", "--role", "postgres")
        assert env.read("primary", PG_FILES[2]) == auto_before  # byte for byte
        assert wait_for(lambda: env.sql("primary", "SHOW ssl_min_protocol_version") == "TLSv1", 20)
    finally:
        env.sql("primary", "ALTER SYSTEM RESET ssl_min_protocol_version")
        env.sql("primary", "ALTER SYSTEM RESET ssl")
        env.sql("primary", "SELECT pg_reload_conf()")


# === cluster =========================================================================================

def test_cluster_loops_during_staged_enable(cl):
    env = cl
    pw = env.pw
    loops = {}
    for node in ("primary", "standby"):
        loops[f"{node}-persistent"] = Loop(env, f"{node}-persistent", "persistent", conn(env, node, mode="prefer"))
        loops[f"{node}-fresh"] = Loop(env, f"{node}-fresh", "fresh", conn(env, node, mode="prefer"))
    loops["pgpool-fresh"] = Loop(env, "pgpool-fresh", "fresh", conn(env, "pgpool", mode="prefer"))
    for loop in loops.values():
        loop.wait_ready()
    steps = []
    for node in ("primary", "standby"):
        steps.append(env.agent_json(node, "enable", "--role", "postgres", "--stage", "offer", passwords=pw))
    steps.append(env.agent_json("standby", "enable", "--role", "postgres", "--stage", "use"))
    pool = env.agent_json("pgpool", "enable", "--role", "pgpool", "--stage", "offer", passwords=pw)
    steps.append(pool)
    steps.append(env.agent_json("pgpool", "enable", "--role", "pgpool", "--stage", "require"))
    for node in ("primary", "standby"):
        steps.append(env.agent_json(node, "enable", "--role", "postgres", "--stage", "require",
                                    "--no-client-cert-address", env.ip["pgpool"], passwords=pw))
    reports = {tag: loop.stop() for tag, loop in loops.items()}
    for tag, report in reports.items():
        print(f"cluster loop {tag}:", json.dumps(report))
    through = reports["pgpool-fresh"]
    print(f"pgpool {pool['version']}: action={pool['action']}, restart gap {through['conn_outage_ms']} ms "
          f"({through['conn_failures']} refused); backend SCRAM window {through['auth_window_ms']} ms "
          f"({through['auth_failures']} failed logins)")
    env.state["through_pgpool"] = through
    for tag, report in reports.items():
        if tag.startswith(("primary", "standby")):
            assert report["failed"] == 0 and report["queries"] >= 5, (tag, report)
    assert pool["action"] == "restart"
    assert through["conn_outage_ms"] < 60000 and through["tls_answers"] > 0, through


def test_cluster_no_failed_logins_through_pgpool_besides_the_restart(cl):
    """Roles are re-hashed to SCRAM only at the servers' require stage, after Pgpool's offer stage
    wrote AES pool_passwd entries: Pgpool can log in to the backends the whole time."""
    through = cl.state.get("through_pgpool")
    assert through is not None, "the loop test did not run"
    assert through["auth_failures"] == 0, through


def test_cluster_client_cert_auth_keeps_pgpool_on_passwords(cl):
    env = cl
    for node in ("primary", "standby"):
        result = env.agent_json(node, "enable", "--role", "postgres", "--client-cert-auth",
                                "--no-client-cert-address", env.ip["pgpool"], passwords=env.pw)
        assert result["changed"], result
    rules = env.sql("primary", "SELECT coalesce(address, '') || ' ' || auth_method FROM pg_hba_file_rules "
                               "WHERE type = 'hostssl' AND 'replication' <> ALL(database) ORDER BY line_number")
    print("primary hostssl rules:", rules.replace("\n", " | "))
    assert f"{env.ip['pgpool']} scram-sha-256" in rules and "0.0.0.0 cert" in rules, rules
    rc, out = env.client(conn(env, "primary", cert=True), "select current_user")
    assert rc == 0 and out.strip() == "webadmin", out
    rc, out = env.client(conn(env, "primary"), "select 1", env.pw["webadmin"])
    assert rc != 0 and "certificate" in out, out
    # Through Pgpool: a password (Pgpool presents no client certificate to the backends).
    rc, out = env.client(conn(env, "pgpool"), "SELECT ssl::text FROM pg_stat_ssl WHERE pid = pg_backend_pid()",
                         env.pw["webadmin"])
    assert rc == 0 and out.strip() == "true", out
    streaming = env.sql("primary", "SELECT count(*) FROM pg_stat_replication r JOIN pg_stat_ssl s USING (pid) "
                                   "WHERE r.state = 'streaming' AND s.ssl")
    assert streaming == "1", streaming


def test_cluster_second_enable_restarts_nothing(cl):
    env = cl
    pid = env.exec("pgpool", ["cat", "/var/run/pgpool/pgpool.pid"])[1]
    for node in ("primary", "standby"):
        result = env.agent_json(node, "enable", "--role", "postgres", "--client-cert-auth",
                                "--no-client-cert-address", env.ip["pgpool"], passwords=env.pw)
        assert result["changed"] is False and result["action"] == "none", result
    result = env.agent_json("pgpool", "enable", "--role", "pgpool", passwords=env.pw)
    assert result["changed"] is False and result["action"] == "none", result
    assert env.exec("pgpool", ["cat", "/var/run/pgpool/pgpool.pid"])[1] == pid


def test_cluster_disable_restores_every_file(cl):
    env = cl
    for node in ("primary", "standby"):
        assert env.agent_json(node, "disable", "--role", "postgres")["action"] == "reload"
    assert env.agent_json("pgpool", "disable", "--role", "pgpool")["action"] == "restart"
    assert all_shas(env) == env.before
    for node in ("primary", "pgpool"):
        assert wait_for(lambda n=node: plaintext_login_works(env, n)[0] == 0, 30), node

