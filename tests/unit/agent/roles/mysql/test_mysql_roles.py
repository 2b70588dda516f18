"""Pure parts of the MySQL-family roles: the STARTTLS prober's packets, option-file discovery,
ProxySQL config parsing, the roles' option reading and the probe against a local TLS server."""

import argparse
import os
import socket
import ssl
import struct
import subprocess
import threading

import pytest

from dbtls_agent import nodeos
from dbtls_agent.crypto import der
from dbtls_agent.errors import AgentError
from dbtls_agent.roles.base import Context
from dbtls_agent.roles.mysql import node, probe
from dbtls_agent.roles.mysql import role as mysql_role
from dbtls_agent.roles.proxysql import admin as proxysql_admin
from dbtls_agent.roles.proxysql import role as proxysql_role
from dbtls_agent.state import RoleState


def greeting(version=b"10.11.6-MariaDB", caps=0xF7FF | probe.CLIENT_SSL, caps_high=0x81FF):
    payload = b"\x0a" + version + b"\0" + struct.pack("<I", 7) + b"12345678" + b"\0"
    payload += struct.pack("<H", caps & 0xFFFF) + b"\x2d" + struct.pack("<H", 2) + struct.pack("<H", caps_high)
    payload += b"\x15" + b"\0" * 10 + b"abcdefghijkl\0" + b"mysql_native_password\0"
    return payload


def test_ssl_request_packet_is_32_bytes_with_client_ssl_and_sequence_1():
    packet = probe.ssl_request_packet()
    assert len(packet) == 4 + 32
    assert packet[:3] == b"\x20\x00\x00" and packet[3] == 1
    caps = struct.unpack("<I", packet[4:8])[0]
    assert caps & probe.CLIENT_SSL and caps & probe.CLIENT_PROTOCOL_41
    assert packet[13:] == b"\0" * 23


def test_parse_greeting_reads_version_and_both_capability_halves():
    info = probe.parse_greeting(greeting())
    assert info.server_version == "10.11.6-MariaDB"
    assert info.capabilities & probe.CLIENT_SSL
    assert info.capabilities >> 16 == 0x81FF


def test_parse_greeting_error_packet_and_bad_protocol_are_one_line_errors():
    err = b"\xff" + struct.pack("<H", 1130) + b"#HY000Host 'x' is not allowed"
    with pytest.raises(AgentError, match="1130.*not allowed"):
        probe.parse_greeting(err)
    with pytest.raises(AgentError, match="protocol version 9"):
        probe.parse_greeting(b"\x09abc\0")
    with pytest.raises(AgentError, match="too short"):
        probe.parse_greeting(b"\x0a1.0\0abc")


def test_frame_rejects_oversized_payload():
    assert probe.frame(b"abc", 3) == b"\x03\x00\x00\x03abc"
    with pytest.raises(ValueError):
        probe.frame(b"\0" * 0xFFFFFF, 0)


@pytest.fixture()
def tls_files(tmp_path):
    """A throwaway CA and a server certificate for 'localhost' made with the openssl CLI."""
    def run(*args):
        subprocess.run(["openssl"] + list(args), cwd=str(tmp_path), check=True, capture_output=True)
    run("req", "-x509", "-newkey", "rsa:2048", "-nodes", "-keyout", "ca.key", "-out", "ca.crt", "-days", "2",
        "-subj", "/CN=test ca")
    run("req", "-newkey", "rsa:2048", "-nodes", "-keyout", "server.key", "-out", "server.csr", "-subj", "/CN=localhost")
    (tmp_path / "ext").write_text("subjectAltName=DNS:localhost\n")
    run("x509", "-req", "-in", "server.csr", "-CA", "ca.crt", "-CAkey", "ca.key", "-CAcreateserial",
        "-out", "server.crt", "-days", "2", "-extfile", "ext")
    return tmp_path


def _fake_server(tls_files, offer_ssl=True):
    """Accept one connection: greet, read the SSLRequest, then do a server-side TLS handshake."""
    listener = socket.socket()
    listener.bind(("127.0.0.1", 0))
    listener.listen(1)
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.load_cert_chain(str(tls_files / "server.crt"), str(tls_files / "server.key"))

    def serve():
        conn, _ = listener.accept()
        caps = 0xF7FF | (probe.CLIENT_SSL if offer_ssl else 0)
        if not offer_ssl:
            caps &= ~probe.CLIENT_SSL
        conn.sendall(probe.frame(greeting(caps=caps), 0))
        try:
            probe.read_packet(conn)
            with context.wrap_socket(conn, server_side=True) as tls:
                tls.recv(1)
        except (OSError, AgentError, ssl.SSLError):
            pass
        finally:
            conn.close()
            listener.close()

    thread = threading.Thread(target=serve, daemon=True)
    thread.start()
    return listener.getsockname()[1], thread


def test_probe_verifies_chain_and_name_and_returns_the_served_fingerprint(tls_files):
    port, thread = _fake_server(tls_files)
    result = probe.probe("localhost", port, str(tls_files / "ca.crt"))
    thread.join(5)
    assert result.sha256 == der.pem_sha256((tls_files / "server.crt").read_bytes())
    assert result.tls_version in ("TLSv1.2", "TLSv1.3")


def test_probe_fails_for_a_wrong_name_or_a_server_without_tls(tls_files):
    port, thread = _fake_server(tls_files)
    with pytest.raises(AgentError, match="host-name|handshake"):
        probe.probe("127.0.0.1", port, str(tls_files / "ca.crt"))
    thread.join(5)
    port, thread = _fake_server(tls_files, offer_ssl=False)
    with pytest.raises(AgentError, match="does not offer TLS"):
        probe.probe("localhost", port, str(tls_files / "ca.crt"))
    thread.join(5)


def test_dropin_plan_prefers_the_platform_conf_d_and_adds_an_include_when_none():
    files = {"/etc/my.cnf": "[mysqld]\n!includedir /etc/my.cnf.d\n!includedir /etc/mysql/conf.d/\n"}
    assert node.dropin_plan(files.get) == ("/etc/mysql/conf.d", None)
    files = {"/etc/my.cnf": "[mysqld]\nport=3306\n"}
    assert node.dropin_plan(files.get) == ("/etc/mysql/conf.d", "/etc/my.cnf")
    files = {"/etc/mysql/my.cnf": "!include /etc/mysql/mariadb.cnf\n",
             "/etc/mysql/mariadb.cnf": "[client-server]\n!includedir /etc/mysql/mariadb.conf.d/\n"}
    assert node.dropin_plan(files.get) == ("/etc/mysql/mariadb.conf.d", None)
    with pytest.raises(AgentError, match="no MySQL option file"):
        node.dropin_plan({}.get)


def test_server_error_picks_error_lines_from_the_log():
    lines = ["2024 0 [Note] Starting", "2024 0 [ERROR] Failed to setup SSL", "2024 0 [ERROR] SSL error: Unable to get private key",
             "2024 0 [ERROR] Failed to setup SSL"]
    assert node.server_error(lines) == "Failed to setup SSL; SSL error: Unable to get private key"
    assert node.one_line("a\n\n b \n") == "a | b"


def test_error_log_tail_reads_only_new_lines(tmp_path):
    log = tmp_path / "error.log"
    log.write_text("old\n")
    size = nodeos.file_size(str(log))
    with open(str(log), "a") as handle:
        handle.write("new [ERROR] boom\n")
    assert node.error_log_tail(str(log), size) == ["new [ERROR] boom"]


PROXYSQL_CNF = """# comment
datadir="/var/lib/proxysql"
admin_variables=
{
    admin_credentials="admin:admin;radmin:se\\"cret"
    mysql_ifaces="0.0.0.0:6032"   // trailing
}
mysql_variables=
{
    interfaces="0.0.0.0:3306"
}
"""


def test_parse_proxysql_config_reads_datadir_credentials_and_port():
    settings = proxysql_admin.parse_config(PROXYSQL_CNF)
    assert settings["datadir"] == "/var/lib/proxysql"
    assert settings["admin_variables.admin_credentials"] == 'admin:admin;radmin:se"cret'
    assert settings["mysql_variables.interfaces"] == "0.0.0.0:3306"
    endpoint = proxysql_admin.admin_endpoint(settings)
    assert (endpoint["user"], endpoint["password"], endpoint["port"]) == ("admin", "admin", 6032)


def test_admin_endpoint_override_and_defaults():
    endpoint = proxysql_admin.admin_endpoint({}, "other:p:w")
    assert (endpoint["user"], endpoint["password"], endpoint["port"], endpoint["datadir"]) == (
        "other", "p:w", 6032, "/var/lib/proxysql")
    assert proxysql_admin.admin_endpoint({"admin_variables.mysql_ifaces": "127.0.0.1:6099"})["port"] == 6099
    with pytest.raises(AgentError, match="user:password"):
        proxysql_admin.admin_endpoint({}, "nocolon")


def test_role_options_from_context_and_args():
    args = argparse.Namespace(cert_dir="/x", stage="all", min_tls="TLSv1.3", require_tls=True)
    ctx = Context(args, "enable", {"root": "pw"})
    assert ctx.cert_dir == "/x" and ctx.get("require_tls") is True and ctx.get("enforce_anyway", False) is False
    assert ctx.stages == ["offer", "use", "require"]
    assert ctx.tls_versions() == ["TLSv1.3"]
    assert ctx.first_password("mysql_root", "root") == "pw"
    args.stage, args.min_tls = "use", "TLSv1.2"
    assert ctx.stages == ["use"] and ctx.tls_versions() is None
    args.stage = "bogus"
    with pytest.raises(AgentError):
        ctx.stages  # noqa: B018  (the property raises)


def test_a_plain_options_object_becomes_a_context_without_a_journal(tmp_path):
    args = argparse.Namespace(cert_dir=str(tmp_path), passwords={"root": "pw"})
    ctx = Context.of(args)
    assert Context.of(ctx) is ctx and ctx.first_password("root") == "pw"
    assert ctx.start_journal("mysql") is None and not (tmp_path / ".dbtls-state").exists()
    ctx.step("offer")  # no journal: nothing to record, nothing fails
    assert Context.of(argparse.Namespace()).cert_dir == "/var/lib/jelastic/keys/SSL-TLS"


def test_role_state_remembers_the_first_value_only(tmp_path):
    st = RoleState(str(tmp_path), "mysql")
    st.remember("before", {"have_ssl": "DISABLED"})
    st.remember("before", {"have_ssl": "YES"})
    again = RoleState(str(tmp_path), "mysql")
    assert again.get("before") == {"have_ssl": "DISABLED"}
    assert oct(os.stat(again.path).st_mode & 0o777) == "0o600"
    again.remove()
    assert RoleState(str(tmp_path), "mysql").data == {}


def test_restart_relevant_ignores_only_the_require_line():
    a = "[mysqld]\nssl_cert=/a\n#require_secure_transport=ON\n"
    b = "[mysqld]\nssl_cert=/a\nrequire_secure_transport=ON\n"
    assert mysql_role.restart_relevant(a) == mysql_role.restart_relevant(b)
    assert mysql_role.restart_relevant(a) != mysql_role.restart_relevant(a.replace("/a", "/b"))


def test_frontend_files_put_only_the_leaf_into_proxysql_cert(tmp_path):
    server = tmp_path / "server"
    server.mkdir()
    leaf = b"-----BEGIN CERTIFICATE-----\nAAA\n-----END CERTIFICATE-----\n"
    (server / "server.crt").write_bytes(leaf + b"-----BEGIN CERTIFICATE-----\nBBB\n-----END CERTIFICATE-----\n")
    (server / "server.key").write_bytes(b"KEY")
    (server / "root.crt").write_bytes(b"ROOT")
    files = proxysql_role._frontend_files(str(tmp_path))
    assert files == {"proxysql-cert.pem": leaf, "proxysql-key.pem": b"KEY", "proxysql-ca.pem": b"ROOT"}
    (server / "root.crt").unlink()
    with pytest.raises(AgentError, match="install-certs"):
        proxysql_role._frontend_files(str(tmp_path))


def test_user_cert_command_is_registered_with_its_options():
    from dbtls_agent import cli

    args = cli.build_parser().parse_args(["user-cert", "--user", "alice", "--subject", "--remove"])
    assert (args.user, args.subject, args.remove, args.no_issue) == ("alice", True, True, False)
    assert args.func.__module__ == "dbtls_agent.commands.usercert"
