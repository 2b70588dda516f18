"""The agent runs as root next to the ``postgres`` account; these tests play that account, for real.

Each test plants what a hostile ``postgres`` could (``docker exec -u postgres``): a pool_passwd path
outside Pgpool's folder, a symbolic link in place of pool_passwd, a fake backend that asks for a
clear-text password, an hba_file moved onto a root file. Then root runs the agent as the platform
would, and the test checks that root neither created, wrote, chmodded nor chowned what the account
chose, and that the real password never left the node. The last test plays a node that holds a
certificate of the environment's CA and poses as the primary: the standby must refuse it.

One pg-cluster of its own (``sec-pg-cluster-<release>``), enabled in the cluster order first.
"""

from __future__ import annotations

import json
import textwrap
from collections.abc import Iterator

import pytest
from hardening_helpers import DATA, enable_pg_cluster, issue_pg_certificates
from harness import CERT_DIR, RELEASES, Env, sim_env, wait_for

CONF_DIR = "/etc/pgpool-II"
PGPOOL_CONF = f"{CONF_DIR}/pgpool.conf"
POOL_PASSWD = f"{CONF_DIR}/pool_passwd"
VICTIM = "/etc/dbtls-sec-victim"
PG_LOG = "/var/log/postgresql/postgresql.log"


@pytest.fixture(scope="module", params=RELEASES)
def env(request, engine) -> Iterator[Env]:
    for e in sim_env("pg-cluster", request.param, "sec"):
        issue_pg_certificates(e)
        enable_pg_cluster(e)
        yield e


def as_postgres(env: Env, node: str, script: str) -> str:
    """The hostile side: a shell script run by the ``postgres`` account itself."""
    rc, out = env.exec(node, ["bash", "-c", script], user="postgres")
    assert rc == 0, out
    return out


def as_root(env: Env, node: str, script: str) -> str:
    rc, out = env.exec(node, ["bash", "-c", script])
    assert rc == 0, out
    return out


def file_facts(env: Env, node: str, path: str) -> str:
    """Owner, mode, type and content hash of ``path`` as root sees it ('missing' when absent)."""
    return as_root(env, node, f"if [ -e {path} ] || [ -L {path} ]; then stat -c '%U:%G %a %F' {path}; "
                              f"[ -f {path} ] && ! [ -L {path} ] && sha256sum < {path}; else echo missing; fi").strip()


def one_line_error(proc) -> str:
    err = proc.stderr.decode().strip()
    assert proc.returncode == 2 and len(err.splitlines()) == 1, (proc.returncode, err, proc.stdout.decode())
    return err


def enable_pgpool(env: Env):
    return env.agent("pgpool", "enable", "--role", "pgpool", "--passwords-stdin", stdin=json.dumps(env.pw).encode())


def test_pool_passwd_named_outside_pgpool_folder_is_refused(env):
    """postgres names a root file as pool_passwd; root must not create it (let alone give it away)."""
    target = "/etc/profile.d/zz-dbtls-sec.sh"
    before = as_postgres(env, "pgpool", f"cat {PGPOOL_CONF}")
    as_postgres(env, "pgpool", f"echo \"pool_passwd = '{target}'\" >> {PGPOOL_CONF}")
    planted = env.sha("pgpool", [PGPOOL_CONF])
    try:
        proc = enable_pgpool(env)
        assert file_facts(env, "pgpool", target) == "missing"
        assert "pool_passwd" in one_line_error(proc)
        assert env.sha("pgpool", [PGPOOL_CONF]) == planted  # nothing was changed
    finally:
        as_root(env, "pgpool", f"rm -f {target}")
        env.exec("pgpool", ["bash", "-c", f"cat > {PGPOOL_CONF}"], stdin=before.encode(), user="postgres")


@pytest.mark.parametrize("command", ["enable", "pool-passwd-native", "pool-passwd-pg_enc"])
def test_link_in_place_of_pool_passwd_is_not_followed(env, command):
    """postgres swaps pool_passwd for a link to a root file: root must neither read it into a file
    postgres owns, nor write, chmod or chown it (``pool-passwd set`` chmods after pg_enc)."""
    if command == "pool-passwd-pg_enc":
        rc, out = env.exec("pgpool", ["pg_enc", "--help"])
        if "input-file" not in out:
            pytest.skip("this Pgpool-II's pg_enc cannot read passwords from a file (before 4.2)")
    # Shaped like pool_passwd (and /etc/shadow): user:secret lines.
    as_root(env, "pgpool", f"printf 'root:victim-secret-line\\n' > {VICTIM} && chmod 0640 {VICTIM}")
    victim = file_facts(env, "pgpool", VICTIM)
    as_postgres(env, "pgpool", f"mv {POOL_PASSWD} {POOL_PASSWD}.real && ln -s {VICTIM} {POOL_PASSWD}")
    try:
        if command == "enable":
            proc = enable_pgpool(env)
        else:
            proc = env.agent("pgpool", "pool-passwd", "set", "webadmin", "--backend", command.split("-")[-1],
                             stdin=(env.pw["webadmin"] + "\n").encode())
        assert file_facts(env, "pgpool", VICTIM) == victim  # not written, chmodded or chowned
        leaked = env.exec("pgpool", ["grep", "-rl", "victim-secret-line", CONF_DIR])[1].split()
        assert leaked == [], leaked  # no copy in a folder postgres owns
        assert "symbolic link" in one_line_error(proc)
        assert as_root(env, "pgpool", f"readlink {POOL_PASSWD}").strip() == VICTIM
    finally:
        as_postgres(env, "pgpool", f"rm -f {POOL_PASSWD} && mv {POOL_PASSWD}.real {POOL_PASSWD}")
        as_root(env, "pgpool", f"rm -f {VICTIM}")


def test_link_in_place_of_the_pgpool_key_is_not_followed(env):
    """postgres swaps ~postgres/.pgpoolkey for a link to a root file: root must not read that file
    as the key that encrypts every pool_passwd entry, nor write through the link."""
    key = "/var/lib/pgsql/.pgpoolkey"
    as_root(env, "pgpool", f"printf 'root-only-key-material\\n' > {VICTIM} && chmod 0600 {VICTIM}")
    victim = file_facts(env, "pgpool", VICTIM)
    passwd = env.sha("pgpool", [POOL_PASSWD])
    as_postgres(env, "pgpool", f"mv {key} {key}.real && ln -s {VICTIM} {key}")
    try:
        proc = enable_pgpool(env)
        assert file_facts(env, "pgpool", VICTIM) == victim
        assert env.sha("pgpool", [POOL_PASSWD]) == passwd  # no entry encrypted with root's file
        assert "symbolic link" in one_line_error(proc)
    finally:
        as_postgres(env, "pgpool", f"rm -f {key} && mv {key}.real {key}")
        as_root(env, "pgpool", f"rm -f {VICTIM}")


FAKE_BACKEND = textwrap.dedent("""\
    import socket, struct, sys
    # A PostgreSQL-protocol listener that asks for a clear-text password, writes down what it gets,
    # then answers like a server whose pg_hba refuses plaintext (so disable stops, changing nothing).
    out, port = sys.argv[1], int(sys.argv[2])
    srv = socket.socket(); srv.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    srv.bind(("127.0.0.1", port)); srv.listen(5)
    open(out + ".ready", "w").close()
    while True:
        conn, _ = srv.accept()
        try:
            size, code = struct.unpack("!II", conn.recv(8))
            if code == 80877103:  # SSLRequest: no TLS here
                conn.sendall(b"N")
                size, code = struct.unpack("!II", conn.recv(8))
            conn.recv(size - 8)
            conn.sendall(b"R" + struct.pack("!II", 8, 3))  # AuthenticationCleartextPassword
            kind, size = conn.recv(1), struct.unpack("!I", conn.recv(4))[0]
            with open(out, "ab") as handle:
                handle.write(conn.recv(size - 4).rstrip(b"\\0") + b"\\n")
            msg = b"SFATAL\\0C28000\\0Mno pg_hba.conf entry for host \\"127.0.0.1\\", no encryption\\0\\0"
            conn.sendall(b"E" + struct.pack("!I", len(msg) + 4) + msg)
        except Exception:
            pass
        conn.close()
    """)


def test_disable_probe_never_sends_the_real_password(env):
    """postgres points a backend of pgpool.conf at its own listener asking for a clear-text password;
    disable's plaintext probe must not hand it Pgpool's real health-check password."""
    port, seen = 5499, "/tmp/dbtls-sec-seen"
    before = as_postgres(env, "pgpool", f"cat {PGPOOL_CONF}")
    env.exec("pgpool", ["bash", "-c", "cat > /tmp/dbtls-sec-fake.py"], stdin=FAKE_BACKEND.encode(), user="postgres")
    as_postgres(env, "pgpool", f"rm -f {seen} {seen}.ready; nohup python3 /tmp/dbtls-sec-fake.py {seen} {port} "
                               f">/dev/null 2>&1 & echo $! > /tmp/dbtls-sec-fake.pid")
    as_postgres(env, "pgpool", f"printf \"backend_hostname0 = '127.0.0.1'\\nbackend_port0 = {port}\\n\" >> {PGPOOL_CONF}")
    try:
        wait_for(lambda: env.exec("pgpool", ["test", "-e", seen + ".ready"])[0] == 0, 30, "the fake backend")
        proc = env.agent("pgpool", "disable", "--role", "pgpool")
        assert "refuses plaintext" in one_line_error(proc)  # it did reach the fake backend
        rc, got = env.exec("pgpool", ["cat", seen])
        assert rc == 0 and got.strip(), got
        assert env.pw["pgpool"] not in got, "the real health-check password went out in clear text"
    finally:
        env.exec("pgpool", ["bash", "-c", "kill $(cat /tmp/dbtls-sec-fake.pid)"], user="postgres")
        env.exec("pgpool", ["bash", "-c", f"cat > {PGPOOL_CONF}"], stdin=before.encode(), user="postgres")


PLATFORM_HBA = """\
local   all             all                                     peer
host    all             all             127.0.0.1/32            md5
host    all             all             0.0.0.0/0               md5
host    replication     all             0.0.0.0/0               md5
"""


def restart_postgres(env: Env, node: str) -> None:
    """What the postgres account may do itself: restart its own server."""
    as_postgres(env, node, f"pg_ctl -D {DATA} -l {PG_LOG} -m fast -w -t 120 restart >/dev/null")


def test_hba_file_moved_onto_a_root_file_is_not_edited(env):
    """A superuser moves hba_file onto a root-owned file (ALTER SYSTEM + a restart it may do itself);
    the require stage must refuse instead of editing that file."""
    victim = "/etc/dbtls-sec-hba.conf"
    env.exec("primary", ["bash", "-c", f"cat > {victim} && chmod 0644 {victim}"], stdin=PLATFORM_HBA.encode())
    facts = file_facts(env, "primary", victim)
    as_postgres(env, "primary", f"psql -XAtq -c \"ALTER SYSTEM SET hba_file = '{victim}'\"")
    restart_postgres(env, "primary")
    try:
        assert as_postgres(env, "primary", "psql -XAtq -c 'SHOW hba_file'").strip() == victim
        proc = env.agent("primary", "enable", "--role", "postgres", "--stage", "require", "--passwords-stdin",
                         "--no-client-cert-address", env.ip["pgpool"], stdin=json.dumps(env.pw).encode())
        assert file_facts(env, "primary", victim) == facts
        assert "belongs to root" in one_line_error(proc)
    finally:
        as_postgres(env, "primary", "psql -XAtq -c 'ALTER SYSTEM RESET hba_file'")
        restart_postgres(env, "primary")
        as_root(env, "primary", f"rm -f {victim}")
        wait_for(lambda: streaming(env), 120, "the standby to stream again")


def streaming(env: Env) -> list[str] | None:
    rc, out = env.exec("standby", ["psql", "-XAtq", "-h", "/var/run/postgresql", "-c",
                                   "SELECT status, conninfo FROM pg_stat_wal_receiver"], user="postgres")
    return out.strip().split("|", 1) if rc == 0 and out.startswith("streaming") else None


def conninfo_value(conninfo: str, key: str) -> str | None:
    for word in conninfo.split():
        if word.startswith(key + "="):
            return word.split("=", 1)[1]
    return None


def test_standby_refuses_another_node_posing_as_its_primary(env):
    """A node of the environment holds a certificate from the same CA (the standby's own here) and
    answers at the primary's address: the standby must not stream from it (verify-ca would)."""
    status, conninfo = wait_for(lambda: streaming(env), 60, "the standby to stream")
    assert conninfo_value(conninfo, "sslmode") == "verify-full", conninfo
    server = f"{CERT_DIR}/server"
    as_root(env, "primary", f"cp -p {server}/server.crt /tmp/sec-own.crt && cp -p {server}/server.key /tmp/sec-own.key")
    impostor = {name: env.exec("standby", ["cat", f"{server}/{name}"])[1] for name in ("server.crt", "server.key")}
    try:
        for name, body in impostor.items():
            env.exec("primary", ["bash", "-c", f"cat > {server}/{name}"], stdin=body.encode())
        as_postgres(env, "primary", "psql -XAtq -c 'SELECT pg_reload_conf()'; sleep 1; psql -XAtq -c "
                                    "'SELECT pg_terminate_backend(pid) FROM pg_stat_replication'")
        wait_for(lambda: "does not match host name" in env.exec("standby", ["tail", "-n", "50", PG_LOG])[1], 60,
                 "the standby to refuse the impostor's certificate")
        assert streaming(env) is None
    finally:
        as_root(env, "primary", f"cp -p /tmp/sec-own.crt {server}/server.crt && cp -p /tmp/sec-own.key {server}/server.key")
        as_postgres(env, "primary", "psql -XAtq -c 'SELECT pg_reload_conf()'")
        wait_for(lambda: streaming(env), 120, "the standby to stream from the real primary again")
