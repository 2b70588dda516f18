"""Client kits on a real pg-cluster: the kit's files and connection strings log in, verifying the server.

The cluster is enabled with client-certificate logins (``--client-cert-auth``: remote ``hostssl ...
cert`` rules, Pgpool-II's address kept on passwords). The kit is copied out of the primary to the
client container at the same path, so the connection strings ``kit show`` prints are used verbatim.
The psql logins through the kit need no password: the certificate is the login. Through Pgpool-II
it is verify-full + password (Pgpool-II presents no client certificate to the backends).
"""

from __future__ import annotations

import json
import subprocess
from collections.abc import Iterator

import pytest
from hardening_helpers import issue_pg_certificates
from harness import CERT_DIR, RELEASES, Env, exec_argv, sim_env

KITS = f"{CERT_DIR}/kits"
JDBC_IMAGE = "kt-kit-jdbc:{release}"
JDBC_DOCKERFILE = """FROM dbtls/client:{release}
RUN apt-get update && DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends \\
    openjdk-17-jdk-headless libpostgresql-jdbc-java && rm -rf /var/lib/apt/lists/*
"""
JAVA_PROGRAM = """import java.sql.*;
public class KitJdbc {
  public static void main(String[] args) throws Exception {
    try (Connection c = DriverManager.getConnection(args[0]);
         ResultSet r = c.createStatement().executeQuery(
           "SELECT current_user || ' ' || ssl::text FROM pg_stat_ssl WHERE pid = pg_backend_pid()")) {
      r.next();
      System.out.println(r.getString(1));
    }
  }
}
"""


@pytest.fixture(scope="module", params=RELEASES)
def env(request, engine) -> Iterator[Env]:
    for e in sim_env("pg-cluster", request.param, "kit"):
        issue_pg_certificates(e)
        for node in ("primary", "standby"):
            e.agent_json(node, "enable", "--role", "postgres", "--stage", "offer", passwords=True)
        e.agent_json("standby", "enable", "--role", "postgres", "--stage", "use")
        e.agent_json("pgpool", "enable", "--role", "pgpool", passwords=True)
        for node in ("primary", "standby"):
            e.agent_json(node, "enable", "--role", "postgres", "--stage", "require", "--client-cert-auth",
                         "--no-client-cert-address", e.ip["pgpool"], passwords=True)
        yield e


def sql(env: Env, node: str, text: str) -> str:
    rc, out = env.exec(node, ["runuser", "-u", "postgres", "--", "psql", "-h", "/var/run/postgresql", "-XAtq",
                              "-v", "ON_ERROR_STOP=1", "-f", "-"], stdin=text.encode())
    assert rc == 0, out
    return out.strip()


def copy_kit(env: Env, user: str, target: str) -> None:
    """The kit folder from the primary to ``target`` (a container), at the same path."""
    out = subprocess.run(exec_argv(env.c["primary"], stdin=False, cmd=["tar", "-C", KITS, "-cf", "-", user]),
                         capture_output=True, check=True).stdout
    subprocess.run(exec_argv(target, stdin=False, cmd=["mkdir", "-p", KITS]), check=True)
    subprocess.run(exec_argv(target, ["tar", "-C", KITS, "-xpf", "-"]), input=out, check=True,
                   capture_output=True)


def psql(env: Env, conninfo: str, password: str | None = None) -> tuple[int, str]:
    query = "SELECT current_user || ' ' || ssl::text FROM pg_stat_ssl WHERE pid = pg_backend_pid()"
    return env.exec("client", ["psql", "-XAtq", "-d", conninfo, "-c", query],
                    env={"PGPASSWORD": password} if password else {})


def test_kit_build_reuses_the_admin_certificate(env):
    hosts = ["--host", env.host["primary"], "--host", env.host["standby"], "--host", env.host["pgpool"]]
    kit = env.agent_json("primary", "kit", "build", "--user", "webadmin", *hosts)
    assert kit["source"] == "node-client" and kit["layer"] == "postgres", kit
    rc, out = env.exec("primary", ["bash", "-c", f"stat -c '%a %U %n' {KITS} {KITS}/webadmin {KITS}/webadmin/*"])
    assert rc == 0, out
    rows = [line.split(" ", 2) for line in out.splitlines()]
    modes = {path: mode for mode, _owner, path in rows}
    assert modes[KITS] == "700" and modes[f"{KITS}/webadmin"] == "700", out
    assert all(m == "600" for p, m in modes.items() if p.startswith(f"{KITS}/webadmin/")), out
    assert {owner for _mode, owner, _path in rows} == {"root"}, out
    env.state["kit"] = kit


def test_psql_logs_in_with_the_kit_certificate_and_verify_full(env):
    kit = env.state["kit"]
    copy_kit(env, "webadmin", env.c["client"])
    by_host = {c["host"]: c["strings"] for c in kit["connections"]}
    for node in ("primary", "standby"):
        conninfo = by_host[env.host[node]]["libpq"] + " connect_timeout=5"
        assert "sslmode=verify-full" in conninfo
        rc, out = psql(env, conninfo)  # no password: the client certificate is the login
        assert rc == 0 and out.strip() == "webadmin true", (node, out)
    # The same string without the certificate is refused (cert-only remote rules), even with the password.
    bare = by_host[env.host["primary"]]["libpq"].split(" sslcert=")[0] + " connect_timeout=5"
    rc, out = psql(env, bare, env.pw["webadmin"])
    assert rc != 0 and "certificate" in out, out
    # Pgpool-II: verify-full against the kit's root, password login (its address stays on passwords).
    rc, out = psql(env, by_host[env.host["pgpool"]]["libpq"] + " connect_timeout=5", env.pw["webadmin"])
    assert rc == 0 and out.strip() == "webadmin true", out


def test_pk8_and_p12_hold_the_same_key_and_certificate(env):
    d = f"{KITS}/webadmin"
    script = (
        f"set -e; cd {d}; "
        "a=$(openssl pkey -in client.key -pubout | sha256sum); "
        "b=$(openssl pkcs8 -inform DER -nocrypt -in client.pk8 | openssl pkey -pubout | sha256sum); "
        "c=$(openssl pkcs12 -in client.p12 -passin file:client.p12.password -nocerts -nodes "
        "| openssl pkey -pubout | sha256sum); "
        "d=$(openssl x509 -in client.crt -outform DER | sha256sum); "
        "e=$(openssl pkcs12 -in client.p12 -passin file:client.p12.password -nokeys -clcerts "
        "| openssl x509 -outform DER | sha256sum); "
        "f=$(openssl x509 -in client.crt -noout -pubkey | sha256sum); "
        "[ \"$a\" = \"$b\" ] && [ \"$a\" = \"$c\" ] && [ \"$a\" = \"$f\" ] && [ \"$d\" = \"$e\" ] && echo same")
    rc, out = env.exec("client", ["bash", "-c", script])
    assert rc == 0 and out.strip().endswith("same"), out


def test_a_registered_user_gets_a_new_certificate_with_the_openssl_backend(env):
    sql(env, "primary", "CREATE ROLE kitalice LOGIN")
    refused = env.agent("primary", "kit", "build", "--user", "kitalice", "--host", env.host["primary"])
    assert refused.returncode == 2 and b"neither the postgres administrator" in refused.stderr, refused.stderr
    env.agent_json("primary", "ca", "policy", "--client-user", "kitalice")
    kit = env.agent_json("primary", "kit", "build", "--user", "kitalice", "--host", env.host["primary"],
                         "--backend", "openssl")
    assert kit["source"] == "issued" and kit["certificate"]["subject"] == "CN=kitalice", kit
    copy_kit(env, "kitalice", env.c["client"])
    rc, out = psql(env, kit["connections"][0]["strings"]["libpq"] + " connect_timeout=5")
    assert rc == 0 and out.strip() == "kitalice true", out


def test_certs_due_lists_the_kits(env):
    report = env.agent_json("primary", "certs", "due", "--within-days", "30")
    roles = sorted(c["role"] for c in report["certificates"])
    assert roles.count("kit") == 2 and "server" in roles and "ca" in roles, roles
    assert report["any_due"] is False, report
    report = env.agent_json("primary", "certs", "due", "--within-days", "366")
    due = sorted(c["role"] for c in report["certificates"] if c["due"])
    assert due == ["client", "kit", "kit"], due  # client certificates: 365 days
    report = env.agent_json("primary", "certs", "due", "--within-days", "826")
    due = sorted(c["role"] for c in report["certificates"] if c["due"])
    assert due == ["client", "kit", "kit", "server"], due  # servers 825 days; CA and roots (10 years) not due


def test_jdbc_with_the_kit(env):
    """pgJDBC (Debian's libpostgresql-jdbc-java on OpenJDK 17) with the kit's root, PEM cert and .pk8 key."""
    image = JDBC_IMAGE.format(release=env.release)
    if subprocess.run(["docker", "image", "inspect", image], capture_output=True).returncode != 0:
        build = subprocess.run(["docker", "build", "-t", image, "-"],
                               input=JDBC_DOCKERFILE.format(release=env.release).encode(), capture_output=True,
                               timeout=1800)
        if build.returncode != 0:
            pytest.skip("no JDK/pgJDBC image: " + build.stderr.decode(errors="replace")[-300:])
    name = f"{env.name}-jdbc"
    subprocess.run(["docker", "run", "-d", "--rm", "--name", name, "--network", f"dbtls-{env.name}", image,
                    "sleep", "900"], check=True, capture_output=True)
    try:
        copy_kit(env, "webadmin", name)
        subprocess.run(exec_argv(name, ["sh", "-c", "cat > /tmp/KitJdbc.java"]),
                       input=JAVA_PROGRAM.encode(), check=True)
        url = {c["host"]: c["strings"] for c in env.state["kit"]["connections"]}[env.host["primary"]]["pgjdbc"]
        proc = subprocess.run(exec_argv(name, stdin=False, cmd=["java", "-cp", "/usr/share/java/postgresql.jar",
                               "/tmp/KitJdbc.java", url]), capture_output=True, timeout=300)
        out = (proc.stdout + proc.stderr).decode(errors="replace")
        assert proc.returncode == 0 and out.strip().splitlines()[-1] == "webadmin true", out
    finally:
        subprocess.run(["docker", "rm", "-f", name], capture_output=True)


def test_kit_remove(env):
    assert env.agent_json("primary", "kit", "remove", "--user", "kitalice")["removed"] is True
    shown = env.agent("primary", "kit", "show", "--user", "kitalice")
    assert shown.returncode == 2 and b"no kit for user" in shown.stderr
    assert json.loads(env.agent("primary", "kit", "show", "--user", "webadmin").stdout)["user"] == "webadmin"
