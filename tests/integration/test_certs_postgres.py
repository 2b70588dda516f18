"""Certificates issued by the agent, served by a real PostgreSQL and checked by real psql.

Proves what unit tests cannot: PostgreSQL accepts the key file (format, owner, mode), libpq's
``verify-full`` accepts the chain and the SANs for both a DNS name and an IP, and ``cert``
authentication maps the client certificate's CN to the database user.
"""

import glob
import os
import shutil
import socket
import subprocess
import sys
import tempfile
import time

import pytest

from conftest import require

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
AGENT_ENV = dict(os.environ, PYTHONPATH=os.path.join(ROOT, "node-scripts"))


def _pg_bindir():
    for candidate in sorted(glob.glob("/usr/lib/postgresql/*/bin"), reverse=True):
        if os.path.exists(os.path.join(candidate, "pg_ctl")):
            return candidate
    found = shutil.which("pg_ctl")
    return os.path.dirname(os.path.realpath(found)) if found else None


def _free_port():
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def _as_postgres(argv):
    """Run as the postgres OS user when we are root (PostgreSQL refuses to run as root)."""
    if os.geteuid() == 0:
        return ["runuser", "-u", "postgres", "--"] + argv
    return argv


def _agent(args, stdin=b""):
    proc = subprocess.run(
        [sys.executable, "-m", "dbtls_agent"] + args, input=stdin, capture_output=True,
        env=AGENT_ENV, check=False,
    )
    assert proc.returncode == 0, proc.stderr.decode()
    return proc.stdout


@pytest.fixture(scope="module", params=["cryptography", "openssl"])
def postgres(request):
    bindir = _pg_bindir()
    require(bindir is not None, "PostgreSQL server binaries (pg_ctl, initdb) are not installed")
    require(shutil.which("psql") is not None, "psql is not installed")
    if os.geteuid() == 0:
        require(shutil.which("runuser") is not None, "runuser is needed to start PostgreSQL as postgres")
        try:
            import pwd

            pwd.getpwnam("postgres")
        except KeyError:
            require(False, "running as root but there is no postgres OS user")
    owner = "postgres" if os.geteuid() == 0 else None

    base = tempfile.mkdtemp(prefix="dbtls-pg-")
    os.chmod(base, 0o755)  # the postgres user must reach its data and certificate dirs
    cert_dir = os.path.join(base, "SSL-TLS")
    data = os.path.join(base, "data")
    AGENT_ENV["DBTLS_CRYPTO_BACKEND"] = request.param
    root = _agent(["ca", "init", "--cert-dir", cert_dir, "--env-name", "itest"])
    server_csr = _agent(["csr", "--kind", "server", "--cert-dir", cert_dir, "--san", "localhost", "--san", "127.0.0.1"])
    client_csr = _agent(["csr", "--kind", "client", "--user", "webadmin", "--cert-dir", cert_dir])
    bundle = _agent(["ca", "sign", "--format", "pem", "--cert-dir", cert_dir], stdin=server_csr + client_csr)
    owner_args = ["--owner", owner] if owner else []
    _agent(["install-certs", "--cert-dir", cert_dir] + owner_args, stdin=bundle)
    assert root.strip() in bundle

    run_dir = os.path.join(base, "run")  # unix socket and lock file
    os.mkdir(run_dir, 0o700)
    if owner:
        os.mkdir(data, 0o700)
        shutil.chown(data, owner, owner)
        shutil.chown(run_dir, owner, owner)
    port = _free_port()
    subprocess.run(
        _as_postgres([os.path.join(bindir, "initdb"), "-D", data, "-U", "webadmin", "--auth=trust", "-E", "UTF8"]),
        stdout=subprocess.PIPE, stderr=subprocess.STDOUT, check=True,
    )
    server = os.path.join(cert_dir, "server")
    settings = [
        "listen_addresses = '127.0.0.1'",
        f"port = {port}",
        f"unix_socket_directories = '{run_dir}'",
        "ssl = on",
        "ssl_cert_file = '{}'".format(os.path.join(server, "server.crt")),
        "ssl_key_file = '{}'".format(os.path.join(server, "server.key")),
        "ssl_ca_file = '{}'".format(os.path.join(server, "root.crt")),
        "ssl_min_protocol_version = 'TLSv1.2'",
    ]
    with open(os.path.join(data, "postgresql.conf"), "a") as handle:
        handle.write("\n" + "\n".join(settings) + "\n")
    with open(os.path.join(data, "pg_hba.conf"), "w") as handle:
        handle.write("local all all trust\nhostssl all all 127.0.0.1/32 cert\n")
    log = os.path.join(data, "server.log")  # data/ is the one directory postgres may write
    subprocess.run(
        _as_postgres([os.path.join(bindir, "pg_ctl"), "-D", data, "-l", log, "-W", "start"]),
        stdout=subprocess.PIPE, stderr=subprocess.STDOUT, check=True,
    )
    try:
        deadline = time.monotonic() + 30
        while True:
            ready = subprocess.run(
                [os.path.join(bindir, "pg_isready"), "-h", "127.0.0.1", "-p", str(port)],
                stdout=subprocess.PIPE, stderr=subprocess.STDOUT, check=False,
            )
            if ready.returncode == 0:
                break
            if time.monotonic() > deadline:
                text = open(log).read() if os.path.exists(log) else "(no log)"
                pytest.fail("PostgreSQL did not start:\n" + text)
            time.sleep(0.05)  # polling interval only; readiness is decided by pg_isready
        yield {"port": port, "cert_dir": cert_dir, "base": base}
    finally:
        subprocess.run(
            _as_postgres([os.path.join(bindir, "pg_ctl"), "-D", data, "-m", "fast", "-w", "stop"]),
            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, check=False,
        )
        shutil.rmtree(base, ignore_errors=True)


def _psql(pg, conninfo, sql="select ssl, client_dn from pg_stat_ssl where pid = pg_backend_pid()"):
    client = os.path.join(pg["cert_dir"], "client")
    full = "{} port={} dbname=postgres user=webadmin sslmode=verify-full sslrootcert={} sslcert={} sslkey={}".format(
        conninfo, pg["port"], os.path.join(client, "root.crt"), os.path.join(client, "client.crt"),
        os.path.join(client, "client.key"),
    )
    return subprocess.run(
        ["psql", full, "-X", "-A", "-t", "-c", sql], capture_output=True, env=dict(os.environ, PGCONNECT_TIMEOUT="10"), check=False,
    )


@pytest.mark.parametrize("host", ["host=localhost", "host=127.0.0.1"])
def test_verify_full_with_client_certificate(postgres, host):
    proc = _psql(postgres, host)
    assert proc.returncode == 0, proc.stderr.decode()
    assert proc.stdout.decode().strip() == "t|/CN=webadmin"


def test_wrong_host_name_is_rejected(postgres):
    proc = _psql(postgres, "host=not-in-the-cert hostaddr=127.0.0.1")
    assert proc.returncode != 0
    assert b"does not match host name" in proc.stderr


def test_cert_auth_needs_the_client_certificate(postgres):
    root = os.path.join(postgres["cert_dir"], "client", "root.crt")
    conninfo = "host=localhost port={} dbname=postgres user=webadmin sslmode=verify-full sslrootcert={} sslcert=/dev/null/none sslkey=/dev/null/none".format(
        postgres["port"], root
    )
    proc = subprocess.run(["psql", conninfo, "-X", "-c", "select 1"], capture_output=True, check=False)
    assert proc.returncode != 0
    assert b"certificate" in proc.stderr
