"""The ProxySQL admin TEST DOUBLE, driven by the real `mariadb` command-line client."""

import json
import os
import shutil
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest

from support import require

DOUBLES = Path(__file__).resolve().parents[2] / "doubles"
PASSWORD = "s3cret-Adm1n"


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def write_private(path, text):
    path.write_text(text)
    path.chmod(0o600)
    return path


def openssl(*args, cwd):
    subprocess.run(["openssl", *args], cwd=cwd, check=True, capture_output=True, timeout=60)


class Double:
    """One double process on 127.0.0.1; restartable on the same datadir and port."""

    def __init__(self, tmp_path, *extra):
        self.tmp = tmp_path
        self.datadir = tmp_path / "datadir"
        self.datadir.mkdir(exist_ok=True)
        self.port = free_port()
        self.extra = list(extra)
        self.proc = None
        self.log = tmp_path / "double.log"
        self.cnf = self.client_cnf(PASSWORD)

    def client_cnf(self, password, name="client.cnf"):
        return write_private(
            self.tmp / name,
            f"[client]\nuser=admin\npassword={password}\nhost=127.0.0.1\nport={self.port}\n",
        )

    def command(self):
        return [sys.executable, "-m", "proxysql_admin_double", "--listen",
                f"127.0.0.1:{self.port}", "--datadir", str(self.datadir), *self.extra]

    def spawn(self):
        env = dict(os.environ, PYTHONPATH=str(DOUBLES))
        with open(self.log, "ab") as log:
            return subprocess.Popen(self.command(), env=env, stdout=log, stderr=subprocess.STDOUT)

    def start(self, deadline_s=30.0):
        self.proc = self.spawn()
        deadline = time.monotonic() + deadline_s
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                pytest.fail(f"double exited with {self.proc.returncode}:\n{self.log.read_text()}")
            try:
                with socket.create_connection(("127.0.0.1", self.port), timeout=0.5):
                    return self
            except OSError:
                time.sleep(0.05)
        pytest.fail(f"double not listening within {deadline_s}s:\n{self.log.read_text()}")

    def stop(self):
        if self.proc is not None and self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(timeout=15)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(timeout=15)
        self.proc = None

    def restart(self):
        self.stop()
        return self.start()

    def run(self, sql, cnf=None):
        return subprocess.run(
            ["mariadb", f"--defaults-extra-file={cnf or self.cnf}", "--batch",
             "--skip-column-names", "-e", sql],
            capture_output=True, text=True, timeout=30,
        )

    def ok(self, sql):
        res = self.run(sql)
        assert res.returncode == 0, f"{sql!r} failed: {res.stderr}"
        return [line.split("\t") for line in res.stdout.splitlines()]

    def err(self, sql):
        res = self.run(sql)
        assert res.returncode != 0, f"{sql!r} unexpectedly succeeded: {res.stdout}"
        return res.stderr

    def value(self, sql):
        rows = self.ok(sql)
        assert len(rows) == 1 and len(rows[0]) == 1, rows
        return rows[0][0]

    def var(self, name, layer=""):
        return self.value(f"SELECT variable_value FROM {layer}global_variables "
                          f"WHERE variable_name='{name}'")


@pytest.fixture
def start_double(tmp_path):
    require(shutil.which("mariadb") is not None, "mariadb client missing")
    started = []

    def _start(*extra):
        d = Double(tmp_path, "--credentials", f"admin:{PASSWORD}", *extra)
        started.append(d)
        return d.start()

    yield _start
    for d in started:
        d.stop()


@pytest.fixture
def double(start_double):
    return start_double("--no-tls-autogen")


def test_login_with_defaults_file_and_banner(double):
    assert "TEST DOUBLE" in double.value("select @@version_comment limit 1")
    assert "TEST DOUBLE" in double.value("SELECT version()")
    assert double.value("SELECT 1") == "1"


def test_wrong_password_is_refused(double):
    bad = double.client_cnf("not-the-password", name="bad.cnf")
    res = double.run("SELECT 1", cnf=bad)
    assert res.returncode != 0
    assert "ERROR 1045" in res.stderr and "Access denied for user 'admin'" in res.stderr
    unknown = write_private(double.tmp / "unknown.cnf",
                            f"[client]\nuser=nobody\npassword={PASSWORD}\nhost=127.0.0.1\n"
                            f"port={double.port}\n")
    assert "ERROR 1045" in double.run("SELECT 1", cnf=unknown).stderr


def test_defaults_present(double):
    expected = {
        "mysql-have_ssl": "false", "mysql-ssl_p2s_ca": "", "mysql-ssl_p2s_cert": "",
        "mysql-ssl_p2s_key": "", "mysql-ssl_p2s_cipher": "", "mysql-ssl_p2s_capath": "",
        "mysql-ssl_p2s_crl": "", "mysql-ssl_p2s_crlpath": "", "mysql-monitor_username": "monitor",
        "mysql-monitor_password": "monitor", "mysql-interfaces": "0.0.0.0:6033",
        "admin-mysql_ifaces": "0.0.0.0:6032", "admin-admin_credentials": f"admin:{PASSWORD}",
        "mysql-server_version": "5.5.30",
    }
    for layer in ("", "runtime_", "disk."):
        rows = dict(double.ok(f"SELECT variable_name, variable_value FROM {layer}global_variables"))
        rows = {k: v for k, v in rows.items()}
        for name, value in expected.items():
            assert rows.get(name, None) == value, (layer, name, rows.get(name))
    # column defaults of ProxySQL 2.x
    double.ok("INSERT INTO mysql_servers (hostgroup_id, hostname) VALUES (10, 'node1')")
    assert double.ok("SELECT port, gtid_port, status, weight, compression, max_connections,"
                     " max_replication_lag, use_ssl, max_latency_ms, comment FROM mysql_servers") == [
        ["3306", "0", "ONLINE", "1", "0", "1000", "0", "0", "0", ""]]
    double.ok("INSERT INTO mysql_users (username, password) VALUES ('app', 'pw')")
    assert double.ok("SELECT active, use_ssl, default_hostgroup, default_schema, schema_locked,"
                     " transaction_persistent, fast_forward, backend, frontend, max_connections,"
                     " attributes, comment FROM mysql_users") == [
        ["1", "0", "0", "NULL", "0", "1", "0", "1", "1", "10000", "", ""]]
    double.ok("INSERT INTO mysql_replication_hostgroups (writer_hostgroup, reader_hostgroup)"
              " VALUES (10, 11)")
    assert double.value("SELECT check_type FROM mysql_replication_hostgroups") == "read_only"
    # ProxySQL's CHECK constraints hold
    assert "ERROR 1045" in double.err("UPDATE mysql_servers SET use_ssl=2")
    tables = {r[0] for r in double.ok("SHOW TABLES")}
    assert {"global_variables", "mysql_servers", "mysql_users", "mysql_replication_hostgroups",
            "runtime_global_variables", "runtime_mysql_servers", "runtime_mysql_users",
            "runtime_mysql_replication_hostgroups"} <= tables


def test_memory_runtime_layers(double):
    double.ok("UPDATE global_variables SET variable_value='true' WHERE variable_name='mysql-have_ssl'")
    assert double.var("mysql-have_ssl") == "true"
    assert double.var("mysql-have_ssl", "runtime_") == "false"
    double.ok("LOAD MYSQL VARIABLES TO RUNTIME")
    assert double.var("mysql-have_ssl", "runtime_") == "true"
    assert double.var("mysql-have_ssl", "disk.") == "false"  # not saved yet

    double.ok("INSERT INTO mysql_servers (hostgroup_id, hostname, port) VALUES (10, 'node1', 3306)")
    assert double.ok("SELECT * FROM runtime_mysql_servers") == []
    double.ok("LOAD MYSQL SERVERS FROM MEMORY")  # alias
    assert double.value("SELECT hostname FROM runtime_mysql_servers") == "node1"
    assert double.ok("SELECT hostgroup, srv_host, ConnUsed FROM stats.stats_mysql_connection_pool") == [
        ["10", "node1", "0"]]
    double.ok("UPDATE mysql_servers SET use_ssl=1")
    assert double.value("SELECT use_ssl FROM runtime_mysql_servers") == "0"
    double.ok("load mysql servers to run")  # alias, lower case
    assert double.value("SELECT use_ssl FROM runtime_mysql_servers") == "1"

    double.ok("INSERT INTO mysql_users (username, password, use_ssl) VALUES ('app', 'pw', 1)")
    double.ok("LOAD MYSQL USERS TO RUNTIME")
    assert double.value("SELECT use_ssl FROM runtime_mysql_users WHERE username='app'") == "1"

    # runtime -> memory discards memory edits
    double.ok("UPDATE mysql_servers SET weight=7")
    double.ok("SAVE MYSQL SERVERS TO MEMORY")
    assert double.value("SELECT weight FROM mysql_servers") == "1"
    double.ok("UPDATE global_variables SET variable_value='x' WHERE variable_name='mysql-monitor_username'")
    double.ok("SAVE MYSQL VARIABLES FROM RUNTIME")
    assert double.var("mysql-monitor_username") == "monitor"

    # ProxySQL rejects a bad boolean: runtime keeps the old value and memory mirrors it
    double.ok("UPDATE global_variables SET variable_value='maybe' WHERE variable_name='mysql-have_ssl'")
    double.ok("LOAD MYSQL VARIABLES TO RUNTIME")
    assert double.var("mysql-have_ssl", "runtime_") == "true"
    assert double.var("mysql-have_ssl") == "true"

    # admin variables: same pattern, and new credentials take effect once loaded
    double.ok(f"UPDATE global_variables SET variable_value='admin:{PASSWORD};ops:opspw'"
              " WHERE variable_name='admin-admin_credentials'")
    ops = write_private(double.tmp / "ops.cnf",
                        f"[client]\nuser=ops\npassword=opspw\nhost=127.0.0.1\nport={double.port}\n")
    assert double.run("SELECT 1", cnf=ops).returncode != 0
    double.ok("LOAD ADMIN VARIABLES TO RUNTIME")
    assert double.run("SELECT 1", cnf=ops).returncode == 0


def test_save_to_disk_survives_restart_unsaved_does_not(double):
    double.ok("UPDATE global_variables SET variable_value='true' WHERE variable_name='mysql-have_ssl'")
    double.ok("LOAD MYSQL VARIABLES TO RUNTIME")
    double.ok("SAVE MYSQL VARIABLES TO DISK")
    double.ok("INSERT INTO mysql_servers (hostgroup_id, hostname) VALUES (10, 'node1')")
    double.ok("LOAD MYSQL SERVERS TO RUNTIME")
    double.ok("SAVE MYSQL SERVERS TO DISK")
    # unsaved changes
    double.ok("UPDATE global_variables SET variable_value='repl' WHERE variable_name='mysql-monitor_username'")
    double.ok("LOAD MYSQL VARIABLES TO RUNTIME")
    double.ok("UPDATE mysql_servers SET use_ssl=1")

    double.restart()
    for layer in ("", "runtime_", "disk."):
        assert double.var("mysql-have_ssl", layer) == "true"
        assert double.var("mysql-monitor_username", layer) == "monitor"
        assert double.ok(f"SELECT hostname, use_ssl FROM {layer}mysql_servers") == [["node1", "0"]]

    # LOAD ... FROM DISK brings disk back into memory
    double.ok("DELETE FROM mysql_servers")
    double.ok("LOAD MYSQL SERVERS FROM DISK")
    assert double.value("SELECT hostname FROM mysql_servers") == "node1"


def test_credentials_ignored_once_disk_exists(start_double, tmp_path):
    d = start_double("--no-tls-autogen")
    d.stop()
    # ProxySQL reads its config (here: argv) only while proxysql.db does not exist
    d.extra = ["--credentials", "admin:other", "--no-tls-autogen"]
    d.start()
    assert d.var("admin-admin_credentials") == f"admin:{PASSWORD}"


def test_seed_and_credentials_file(tmp_path):
    require(shutil.which("mariadb") is not None, "mariadb client missing")
    seed = tmp_path / "seed.json"
    seed.write_text(json.dumps({
        "variables": {"mysql-interfaces": "0.0.0.0:3306", "mysql-monitor_username": "repl-1"},
        "mysql_servers": [{"hostgroup_id": 10, "hostname": "node1", "port": 3306},
                          {"hostgroup_id": 11, "hostname": "node2", "port": 3306}],
        "mysql_users": [{"username": "user-1", "password": "pw", "default_hostgroup": 10}],
        "mysql_replication_hostgroups": [{"writer_hostgroup": 10, "reader_hostgroup": 11}],
    }))
    creds = write_private(tmp_path / "admin.cred", f"admin:{PASSWORD}\n")
    d = Double(tmp_path, "--credentials-file", str(creds), "--seed", str(seed), "--no-tls-autogen")
    try:
        d.start()
        for layer in ("", "runtime_", "disk."):
            assert d.var("mysql-interfaces", layer) == "0.0.0.0:3306"
            assert d.var("mysql-monitor_username", layer) == "repl-1"
            assert d.ok(f"SELECT hostgroup_id, hostname FROM {layer}mysql_servers ORDER BY 1") == [
                ["10", "node1"], ["11", "node2"]]
            assert d.value(f"SELECT username FROM {layer}mysql_users") == "user-1"
            assert d.value(f"SELECT reader_hostgroup FROM {layer}mysql_replication_hostgroups") == "11"
    finally:
        d.stop()


def test_runtime_and_stats_tables_are_read_only(double):
    for sql in (
        "UPDATE runtime_global_variables SET variable_value='true' WHERE variable_name='mysql-have_ssl'",
        "INSERT INTO runtime_mysql_servers (hostgroup_id, hostname) VALUES (1, 'x')",
        "DELETE FROM runtime_mysql_users",
        "REPLACE INTO runtime_mysql_replication_hostgroups VALUES (1, 2, 'read_only', '')",
        "DELETE FROM stats.stats_double_tls",
    ):
        err = double.err(sql)
        assert "ERROR 1045" in err and "read-only" in err, err
    assert double.var("mysql-have_ssl", "runtime_") == "false"


def make_tls_set(directory, cn):
    directory.mkdir(parents=True, exist_ok=True)
    openssl("req", "-x509", "-newkey", "rsa:2048", "-nodes", "-keyout", "ca.key", "-out", "ca.pem",
            "-days", "30", "-subj", f"/CN={cn} CA", cwd=directory)
    openssl("req", "-newkey", "rsa:2048", "-nodes", "-keyout", "key.pem", "-out", "req.csr",
            "-subj", f"/CN={cn}", cwd=directory)
    openssl("x509", "-req", "-in", "req.csr", "-CA", "ca.pem", "-CAkey", "ca.key",
            "-set_serial", "7", "-days", "30", "-out", "cert.pem", cwd=directory)
    return directory


def install(tls_set, datadir, key_from=None):
    shutil.copy(tls_set / "ca.pem", datadir / "proxysql-ca.pem")
    shutil.copy(tls_set / "cert.pem", datadir / "proxysql-cert.pem")
    shutil.copy((key_from or tls_set) / "key.pem", datadir / "proxysql-key.pem")


def cert_sha256(path):
    out = subprocess.run(["openssl", "x509", "-in", str(path), "-noout", "-fingerprint", "-sha256"],
                         capture_output=True, text=True, check=True).stdout
    return out.split("=", 1)[1].strip().replace(":", "").lower()


def test_reload_tls(double, tmp_path):
    require(shutil.which("openssl") is not None, "openssl CLI missing")
    state = "SELECT loaded, reloads, cert_sha256 FROM stats_double_tls"
    assert double.ok(state) == [["0", "0", "NULL"]]
    err = double.err("PROXYSQL RELOAD TLS")
    assert "RELOAD TLS failed: 0 TLS files are present. Expected: 3" in err

    one, two = make_tls_set(tmp_path / "one", "one"), make_tls_set(tmp_path / "two", "two")
    shutil.copy(one / "cert.pem", double.datadir / "proxysql-cert.pem")
    assert "2 TLS files" not in err
    assert "1 TLS files are present" in double.err("PROXYSQL RELOAD TLS")

    install(one, double.datadir, key_from=two)
    assert "Private key does not match the public certificate" in double.err("PROXYSQL RELOAD TLS")
    (double.datadir / "proxysql-key.pem").write_text("garbage\n")
    assert "PEM_read_bio_PrivateKey" in double.err("PROXYSQL RELOAD TLS")
    assert double.ok(state) == [["0", "0", "NULL"]]

    install(one, double.datadir)
    double.ok("PROXYSQL RELOAD TLS")
    assert double.ok(state) == [["1", "1", cert_sha256(one / "cert.pem")]]

    # rotation: a failed reload keeps the old context, a good one swaps it
    install(two, double.datadir, key_from=one)
    double.err("PROXYSQL RELOAD TLS")
    assert double.ok(state) == [["1", "1", cert_sha256(one / "cert.pem")]]
    install(two, double.datadir)
    double.ok("proxysql reload tls;")
    assert double.ok(state) == [["1", "2", cert_sha256(two / "cert.pem")]]
    assert double.value("SELECT cert_subject FROM stats_double_tls") == "CN=two"


def test_tls_files_generated_at_first_start_and_partial_set_refused(start_double, tmp_path):
    require(shutil.which("openssl") is not None, "openssl CLI missing")
    d = start_double()
    names = sorted(p.name for p in d.datadir.glob("proxysql-*.pem"))
    assert names == ["proxysql-ca.pem", "proxysql-cert.pem", "proxysql-key.pem"]
    assert d.value("SELECT cert_subject FROM stats_double_tls") == \
        "CN=ProxySQL_Auto_Generated_Server_Certificate"
    d.ok("PROXYSQL RELOAD TLS")
    d.stop()
    (d.datadir / "proxysql-key.pem").unlink()
    proc = d.spawn()
    assert proc.wait(timeout=30) != 0
    assert "Only some SSL files are present" in d.log.read_text()


def test_unimplemented_statements_fail(double):
    for sql in ("FLUSH PRIVILEGES", "CREATE TABLE t (a INT)", "DROP TABLE mysql_servers",
                "SET GLOBAL max_connections=10", "LOAD MYSQL QUERY RULES TO RUNTIME",
                "PROXYSQL RESTART", "SHOW PROCESSLIST", "BEGIN", "PRAGMA table_info(mysql_servers)"):
        res = double.run(sql)
        assert res.returncode != 0, sql
        assert "proxysql_admin_double" in res.stderr, (sql, res.stderr)
    assert "ERROR 1045" in double.err("SELECT * FROM no_such_table")  # like ProxySQL's admin


def test_client_session_statements_accepted(double):
    assert double.ok("SET NAMES utf8mb4") == []
    assert double.ok("SET autocommit=1") == []
    assert double.ok("SET SESSION sql_mode=''") == []
    assert double.ok("SHOW WARNINGS") == []
    assert double.value("SELECT @@max_allowed_packet") == "67108864"
    assert ["mysql-have_ssl", "false"] in double.ok("SHOW VARIABLES LIKE 'mysql-have%'")
    assert double.ok("SHOW MYSQL SERVERS") == []
    assert "ERROR 1193" in double.err("SELECT @@no_such_variable")


def test_several_statements_in_one_query_refused(tmp_path, monkeypatch):
    # The mariadb client splits "a; b" itself, so this one is checked in-process.
    monkeypatch.syspath_prepend(str(DOUBLES))
    from proxysql_admin_double.server import AdminSession
    from proxysql_admin_double.store import AdminError, AdminStore

    store = AdminStore(str(tmp_path), credentials="admin:x", server_version="v", tls_autogen=False)
    try:
        session = AdminSession(store, "v", "c")
        assert session.execute("SELECT 'a;b';") == (["'a;b'"], [["a;b"]])
        with pytest.raises(AdminError, match="several statements"):
            session.execute("SELECT 1; DELETE FROM mysql_servers")
    finally:
        store.close()


def test_double_source_runs_on_bullseye_python39():
    vermin = shutil.which("vermin", path=str(Path(sys.executable).parent)) or shutil.which("vermin")
    require(vermin is not None, "vermin missing")
    res = subprocess.run(
        [vermin, "-t=3.9-", "--no-tips", "--violations",
         "--eval-annotations", str(DOUBLES / "proxysql_admin_double")],
        capture_output=True, text=True, timeout=120,
    )
    assert res.returncode == 0, res.stdout + res.stderr
