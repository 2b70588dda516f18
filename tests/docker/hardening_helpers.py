"""Shared pieces of the hardening tests: certificates issued and the cluster-order enable through
the agent, connection checks, file fingerprints, and the agent killed at a step.

Each hardening module brings up an environment of its own (``harness.sim_env``) with a prefix no other
module uses, so they never share one; ``DBTLS_KEEP_SIM=1`` keeps them for the next run.
"""

from __future__ import annotations

from agent_helpers import issue_certificates
from harness import CERT_DIR, Env

DATA = "/var/lib/pgsql/data"
PG_FILES = [f"{DATA}/postgresql.conf", f"{DATA}/pg_hba.conf", f"{DATA}/postgresql.auto.conf"]
POOL_FILES = ["/etc/pgpool-II/pgpool.conf", "/etc/pgpool-II/pool_hba.conf", "/etc/pgpool-II/pool_passwd"]
ROOT_ON_CLIENT = "/tmp/hardening-root.crt"
KILLED = (-9, 137)  # docker exec reports a SIGKILLed process as 137
KILL_ENV = "DBTLS_TEST_KILL_AFTER_STEP"


def pg_nodes(env: Env) -> list[str]:
    return [k for k in ("primary", "standby", "pgpool") if k in env.c]


def issue_pg_certificates(env: Env) -> str:
    """CA on the primary, server+client certificates everywhere; root.crt copied to the client."""
    root = issue_certificates(env, env.c["primary"], [env.c[k] for k in pg_nodes(env)])
    rc, out = env.exec("client", ["sh", "-c", f"cat > {ROOT_ON_CLIENT}"], stdin=root.encode())
    assert rc == 0, out
    return root


def enable_pg_cluster(env: Env) -> None:
    """The cross-stack order through the agent: offer, use, pgpool, then require."""
    for node in ("primary", "standby"):
        env.agent_json(node, "enable", "--role", "postgres", "--stage", "offer", passwords=True)
    env.agent_json("standby", "enable", "--role", "postgres", "--stage", "use")
    env.agent_json("pgpool", "enable", "--role", "pgpool", passwords=True)
    for node in ("primary", "standby"):
        # Roles are re-hashed to SCRAM in the require stage, so it needs the passwords too.
        env.agent_json(node, "enable", "--role", "postgres", "--stage", "require",
                       "--no-client-cert-address", env.ip["pgpool"], passwords=True)


def psql_ok(env: Env, node: str, mode: str = "verify-full") -> bool:
    """One query from the client container to ``node`` with ``sslmode=mode``."""
    conninfo = (f"host={env.host[node]} user=webadmin dbname=postgres sslmode={mode} connect_timeout=5"
                + (f" sslrootcert={ROOT_ON_CLIENT}" if mode.startswith("verify") else ""))
    rc, _ = env.exec("client", ["psql", "-XAtq", "-d", conninfo, "-c", "select 1"],
                     env={"PGPASSWORD": env.pw["webadmin"]})
    return rc == 0


def served_fingerprint(env: Env, node: str) -> str:
    """SHA-256 fingerprint of the certificate ``node`` serves (PostgreSQL STARTTLS), from the client."""
    rc, out = env.exec("client", ["bash", "-c", f"openssl s_client -starttls postgres -connect {env.host[node]}:5432 "
                                  "</dev/null 2>/dev/null | openssl x509 -noout -fingerprint -sha256"])
    return out.strip() if rc == 0 and "Fingerprint" in out else ""


# --- MySQL-family environments (mariadb, mariadb-cluster): "standby" is the replica ------------


def mysql_nodes(env: Env) -> list[str]:
    return [k for k in ("primary", "standby", "proxysql") if k in env.c]


def issue_mysql_certificates(env: Env) -> str:
    """CA on the primary, a server certificate on every MariaDB and ProxySQL node; root.crt to the client."""
    root = issue_certificates(env, env.c["primary"], [env.c[k] for k in mysql_nodes(env)], client=False)
    rc, out = env.exec("client", ["sh", "-c", f"cat > {ROOT_ON_CLIENT}"], stdin=root.encode())
    assert rc == 0, out
    return root


def mysql_ok(env: Env, host: str, tls: bool = True) -> bool:
    """One query as root from the client container to ``host`` (a node key or a host name):
    verifying the certificate and the name as typed (tls), or without TLS (not tls)."""
    args = ["mariadb", f"--host={env.host.get(host, host)}", "--user=root", "--connect-timeout=5", "--batch",
            "--skip-column-names"]
    args += ["--ssl-verify-server-cert", f"--ssl-ca={ROOT_ON_CLIENT}"] if tls else ["--skip-ssl"]
    rc, out = env.exec("client", args + ["-e", "SELECT 1"], env={"MYSQL_PWD": env.secrets["MYSQL_ROOT_PASSWORD"]})
    return rc == 0 and out.strip() == "1"


def served_mysql_fingerprint(env: Env, node: str, port: int = 3306) -> str:
    """SHA-256 fingerprint of the certificate ``node`` serves (MySQL STARTTLS), from the client."""
    rc, out = env.exec("client", ["bash", "-c", f"openssl s_client -starttls mysql -connect {env.host[node]}:{port} "
                                  "</dev/null 2>/dev/null | openssl x509 -noout -fingerprint -sha256"])
    return out.strip() if rc == 0 and "Fingerprint" in out else ""


def cert_fingerprint(env: Env, node: str, path: str = f"{CERT_DIR}/server/server.crt") -> str:
    """``sha256 Fingerprint=AB:CD:...`` of a certificate file on ``node`` (as openssl prints it)."""
    rc, out = env.exec(node, ["openssl", "x509", "-noout", "-fingerprint", "-sha256", "-in", path])
    assert rc == 0, out
    return out.strip()


def proxysql_admin(env: Env, query: str) -> str:
    """A query on the ProxySQL admin interface (the test double on simulated nodes), as its admin."""
    user = env.secrets.get("PROXYSQL_ADMIN_USER", "admin")
    rc, out = env.exec("proxysql", ["mariadb", "--skip-ssl", "-h127.0.0.1", "-P6032", f"-u{user}", "--batch",
                                    "--skip-column-names", "-e", query],
                       env={"MYSQL_PWD": env.secrets.get("PROXYSQL_ADMIN_PASSWORD", "admin")})
    assert rc == 0, out
    return out


def run_killed(env: Env, node: str, args: list[str], step: str, stdin: bytes | None = None) -> None:
    """Run the agent with the kill hook set to ``step`` and insist that it died there."""
    proc = env.agent(node, *args, stdin=stdin, extra_env={KILL_ENV: step})
    assert proc.returncode in KILLED, f"{args} was not killed after {step}: rc={proc.returncode} {proc.stderr!r}"


def reissue_server_cert(env: Env, node: str, kill: str | None) -> bytes:
    """The manifest's certificate steps of a server re-issue on ``node`` (csr on the node, signing on
    the primary, install on the node), killed once at ``kill`` (``csr:...``/``install-certs:...``)
    and re-run; returns what the CA signed (certificate first). Reloading is the caller's."""
    csr_args = ["csr", "--kind", "server", "--rotate"]
    if kill and kill.startswith("csr:"):
        run_killed(env, node, csr_args, kill)
    proc = env.agent(node, *csr_args)
    assert proc.returncode == 0, proc.stderr.decode()
    signed = env.agent("primary", "ca", "sign", "--format", "pem", stdin=proc.stdout)
    assert signed.returncode == 0, signed.stderr.decode()
    if kill and kill.startswith("install-certs:"):
        run_killed(env, node, ["install-certs"], kill, signed.stdout)
    proc = env.agent(node, "install-certs", stdin=signed.stdout)
    assert proc.returncode == 0, f"{node} install-certs: {proc.stderr.decode()}"
    return signed.stdout
