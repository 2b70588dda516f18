"""Pure parts of the postgres/pgpool roles: secrets, conninfo edits, version policy, probe, CLI."""

import base64
import hashlib
import hmac
import json
import socket
import ssl
import threading

import pytest

from dbtls_agent import cli, roles
from dbtls_agent.errors import AgentError
from dbtls_agent.roles.pgpool import facts as pgpool_facts
from dbtls_agent.roles.postgres import accounts, client, tlsprobe


def test_scram_verifier_matches_rfc7677_shape_and_checks_password():
    salt = b"0123456789abcdef"
    verifier = client.scram_verifier("pencil", salt, 4096)
    head, keys = verifier[len("SCRAM-SHA-256$"):].split("$")
    assert head == "4096:" + base64.b64encode(salt).decode()
    salted = hashlib.pbkdf2_hmac("sha256", b"pencil", salt, 4096)
    client_key = hmac.new(salted, b"Client Key", hashlib.sha256).digest()
    assert keys.split(":")[0] == base64.b64encode(hashlib.sha256(client_key).digest()).decode()
    assert client.secret_matches("u", verifier, "pencil") is True
    assert client.secret_matches("u", verifier, "pencil2") is False


def test_md5_secret_and_matching():
    # md5 secret = 'md5' + md5(password + user name), computed independently for dave/pw3
    assert client.md5_secret("dave", "pw3") == "md5a22d8828295decc31aea7bc92059424a"
    assert client.secret_matches("dave", "md5a22d8828295decc31aea7bc92059424a", "pw3") is True
    assert client.secret_matches("dave", "md5a22d8828295decc31aea7bc92059424a", "nope") is False
    assert client.secret_matches("dave", None, "pw3") is None


def test_plan_rehash_refuses_wrong_password_and_skips_scram():
    secrets = {"webadmin": client.md5_secret("webadmin", "right"),
               "app": client.scram_verifier("x"), "old": client.md5_secret("old", "o")}
    todo, skipped = accounts.plan_rehash(secrets, {"webadmin": "right", "app": "x", "ghost": "g"})
    assert todo == ["webadmin"] and skipped == ["ghost"]
    with pytest.raises(AgentError, match="does not match"):
        accounts.plan_rehash(secrets, {"webadmin": "wrong"})
    assert accounts.md5_roles(secrets) == ["old", "webadmin"]


def test_set_conninfo_adds_and_replaces_without_duplicates():
    text = "user=replication passfile='/var/lib/pgsql/.pgpass' host=node101 sslmode=prefer"
    new = accounts.set_conninfo(text, {"sslmode": "verify-ca", "sslrootcert": "/k/root.crt"})
    assert new == "user=replication passfile=/var/lib/pgsql/.pgpass host=node101 sslmode=verify-ca sslrootcert=/k/root.crt"
    assert accounts.set_conninfo(new, {"sslmode": "verify-ca", "sslrootcert": "/k/root.crt"}) == new
    quoted = accounts.set_conninfo("application_name='my app' x=''", {"sslmode": "require"})
    assert accounts.parse_conninfo(quoted) == [("application_name", "my app"), ("x", ""), ("sslmode", "require")]


def test_pgpool_start_only_settings_by_version():
    assert "ssl_cert" in pgpool_facts.start_only("4.3.5") and "ssl" in pgpool_facts.start_only("4.7.2")
    assert pgpool_facts.start_only("4.8.0") == ["ssl", "pool_passwd"]
    assert "ssl_key" in pgpool_facts.start_only(None)


def test_registry_and_parser_expose_shared_options():
    assert set(roles.ROLE_NAMES) == {"postgres", "pgpool", "mysql", "proxysql"}
    assert roles.load("postgres").detect and roles.load("pgpool").enable
    args = cli.build_parser().parse_args(["enable", "--role", "pgpool", "--stage", "offer", "--no-client-cert-address",
                                          "10.0.0.1", "--no-client-cert-address", "10.0.0.2", "--passwords-stdin"])
    assert args.stage == "offer" and args.no_client_cert_address == ["10.0.0.1", "10.0.0.2"]
    args = cli.build_parser().parse_args(["disable", "--role", "postgres", "--remove-certs"])
    assert args.remove_certs and args.cert_dir == cli.DEFAULT_CERT_DIR
    with pytest.raises(AgentError, match="unknown role"):
        roles.load("oracle")


def test_passwords_stdin_must_be_json_object(monkeypatch):
    import io
    monkeypatch.setattr("sys.stdin", io.StringIO(json.dumps({"webadmin": "a"})))
    assert accounts.read_passwords_stdin() == {"webadmin": "a"}
    monkeypatch.setattr("sys.stdin", io.StringIO("[1]"))
    with pytest.raises(AgentError):
        accounts.read_passwords_stdin()


def test_probe_reports_server_without_tls():
    server = socket.socket()
    server.bind(("127.0.0.1", 0))
    server.listen(1)
    port = server.getsockname()[1]

    def answer_n():
        conn, _ = server.accept()
        conn.recv(8)
        conn.sendall(b"N")
        conn.close()
    thread = threading.Thread(target=answer_n)
    thread.start()
    result = tlsprobe.probe("127.0.0.1", port, None, timeout=5)
    thread.join(5)
    server.close()
    assert result["ok"] is False and result["tls"] is False and "does not offer TLS" in result["error"]


def test_probe_unreachable_port_is_a_result_not_an_exception():
    sock = socket.socket()
    sock.bind(("127.0.0.1", 0))
    port = sock.getsockname()[1]
    sock.close()
    result = tlsprobe.probe("127.0.0.1", port, None, timeout=2)
    assert result["ok"] is False and "cannot connect" in result["error"]


def test_pem_sha256_is_der_fingerprint():
    der = b"0\x03\x02\x01\x00"
    pem = ssl.DER_cert_to_PEM_cert(der).encode()
    assert tlsprobe.pem_sha256(pem) == hashlib.sha256(der).hexdigest()
