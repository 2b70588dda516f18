"""Client defaults file (secrets never on argv), its 0600 lifecycle, argv building and --batch parsing."""

import os
import shutil
import stat
import subprocess

import pytest

from dbtls_agent.errors import AgentError
from dbtls_agent.roles.mysql import client as mc
from support import require

PASSWORDS = [
    "simple",
    "with space",
    "  leading and trailing  ",
    'double"quote',
    "single'quote",
    "hash#not-a-comment",
    "semi;colon",
    "back\\slash",
    "ends with backslash\\",
    '\\"',
    "\\n is not a newline",
    "non-ASCII: pässwörd €",
    "tab\there",
    "=starts with equals",
    "'",
    '"',
    "",
]


@pytest.mark.parametrize("value", PASSWORDS + ["new\nline", "cr\rret", "bs\bx"])
def test_quote_value_round_trip(value):
    assert mc.unquote_value(mc.quote_value(value)) == value


def test_quote_value_refuses_nul():
    with pytest.raises(AgentError):
        mc.quote_value("a\0b")


def test_render_client_defaults_mariadb():
    text = mc.render_client_defaults(user="root", password='pa"ss#', host="127.0.0.1", port=6032, skip_ssl=True)
    assert text == (
        "# written by dbtls for one client call; removed right after\n"
        "[client]\n"
        'user="root"\n'
        'password="pa\\"ss#"\n'
        'host="127.0.0.1"\n'
        "port=6032\n"
        "default-character-set=utf8mb4\n"
        "skip-ssl\n"
    )


@pytest.mark.parametrize("client, kwargs, tls_lines", [
    ("mariadb", {}, []),
    ("mariadb", {"ssl_ca": "/ca.pem"}, ['ssl-ca="/ca.pem"']),
    ("mariadb", {"ssl_ca": "/ca.pem", "ssl_verify_server_cert": True}, ['ssl-ca="/ca.pem"', "ssl-verify-server-cert"]),
    ("mariadb", {"skip_ssl": True}, ["skip-ssl"]),
    ("mysql", {}, []),
    ("mysql", {"ssl_ca": "/ca.pem"}, ['ssl-ca="/ca.pem"', "ssl-mode=VERIFY_CA"]),
    ("mysql", {"ssl_ca": "/ca.pem", "ssl_verify_server_cert": True}, ['ssl-ca="/ca.pem"', "ssl-mode=VERIFY_IDENTITY"]),
    ("mysql", {"skip_ssl": True}, ["ssl-mode=DISABLED"]),
])
def test_tls_option_dialects(client, kwargs, tls_lines):
    lines = mc.render_client_defaults(user="u", client=client, **kwargs).splitlines()
    assert lines[lines.index("default-character-set=utf8mb4") + 1:] == tls_lines


def test_render_client_defaults_socket_and_refusals():
    text = mc.render_client_defaults(user="u", socket="/run/mysqld/mysqld.sock")
    assert 'socket="/run/mysqld/mysqld.sock"' in text
    with pytest.raises(AgentError):
        mc.render_client_defaults(user="u", skip_ssl=True, ssl_ca="/ca.pem")
    with pytest.raises(AgentError):
        mc.render_client_defaults(user="u", client="psql")


def test_private_defaults_file_is_0600_and_removed(tmp_path):
    with mc.private_defaults_file("[client]\npassword=\"x\"\n", parent=str(tmp_path)) as path:
        assert stat.S_IMODE(os.stat(path).st_mode) == 0o600
        assert stat.S_IMODE(os.stat(os.path.dirname(path)).st_mode) == 0o700
        with open(path, encoding="utf-8") as handle:
            assert handle.read() == '[client]\npassword="x"\n'
        directory = os.path.dirname(path)
    assert not os.path.exists(path) and not os.path.exists(directory)
    assert list(tmp_path.iterdir()) == []


def test_private_defaults_file_removed_on_error(tmp_path):
    with pytest.raises(RuntimeError):
        with mc.private_defaults_file("x", parent=str(tmp_path)):
            raise RuntimeError("boom")
    assert list(tmp_path.iterdir()) == []


def test_mysql_argv():
    argv = mc.mysql_argv("/tmp/d/client.cnf", "SELECT 1", client="mariadb", extra_args=["--protocol=TCP"])
    assert argv == ["mariadb", "--defaults-extra-file=/tmp/d/client.cnf", "--batch", "--skip-column-names",
                    "--protocol=TCP", "-e", "SELECT 1"]
    assert "--skip-column-names" not in mc.mysql_argv("/f", "SHOW SLAVE STATUS", column_names=True)


@pytest.mark.parametrize("bad", ["-psecret", "--password=secret", "--password", "--defaults-file=/x"])
def test_mysql_argv_refuses_secrets_and_late_defaults(bad):
    with pytest.raises(AgentError):
        mc.mysql_argv("/f", "SELECT 1", extra_args=[bad])


@pytest.mark.parametrize("version, kind", [
    ("mysql  Ver 15.1 Distrib 10.11.6-MariaDB, for debian-linux-gnu (x86_64) using  EditLine wrapper", "mariadb"),
    ("mariadb from 11.4.2-MariaDB, client 15.2 for Linux (x86_64) using readline 5.1", "mariadb"),
    ("mysql  Ver 8.0.36 for Linux on x86_64 (MySQL Community Server - GPL)", "mysql"),
    ("mysql  Ver 8.0.36-28 for Linux on x86_64 (Percona Server (GPL), Release 28, Revision 47601f19)", "mysql"),
])
def test_client_kind(version, kind):
    assert mc.client_kind(version) == kind


@pytest.mark.parametrize("output, rows", [
    ("", []),
    ("1\n", [["1"]]),
    ("a\tb\n", [["a", "b"]]),
    ("NULL\tx\n", [[None, "x"]]),
    ("\t\n", [["", ""]]),
    ("tab\\there\tnew\\nline\n", [["tab\there", "new\nline"]]),
    ("back\\\\slash\tnul\\0byte\n", [["back\\slash", "nul\0byte"]]),
    ("literal \\\\t\n", [["literal \\t"]]),
    ("r1\nr2\n", [["r1"], ["r2"]]),
    ("no final newline", [["no final newline"]]),
    ("\n", [[""]]),
])
def test_parse_batch_output(output, rows):
    assert mc.parse_batch_output(output) == rows


@pytest.mark.parametrize("cell", ["plain", "", "a\tb", "a\nb", "a\\b", "\\t literal", "nul\0", "ü€", "\\", None])
def test_batch_escape_round_trip(cell):
    line = mc.escape_batch_field(cell) + "\t" + mc.escape_batch_field("x") + "\n"
    assert mc.parse_batch_output(line) == [[cell, "x"]]




@pytest.mark.parametrize("password", [p for p in PASSWORDS if p])
def test_real_client_reads_password_back(password, tmp_path):
    tool = shutil.which("my_print_defaults")
    require(tool is not None, "my_print_defaults not installed (apt-get install mariadb-client)")
    text = mc.render_client_defaults(user="root", password=password, host="127.0.0.1", port=3306,
                                     ssl_ca="/path with space/#ca.pem", ssl_verify_server_cert=True)
    with mc.private_defaults_file(text, parent=str(tmp_path)) as path:
        # --defaults-file: only our file, so the host's own [client] settings cannot interfere.
        out = subprocess.run([tool, "--defaults-file=" + path, "client"], capture_output=True,
                             check=True).stdout.decode("utf-8")
    lines = out.split("\n")
    assert "--password=" + password in lines
    assert "--user=root" in lines and "--port=3306" in lines
    assert "--ssl-ca=/path with space/#ca.pem" in lines
    assert "--ssl-verify-server-cert" in lines


def test_real_client_accepts_rendered_file(tmp_path):
    """The mariadb client itself parses the file (an unknown option would make it exit)."""
    program = shutil.which("mariadb")
    require(program is not None, "mariadb client not installed (apt-get install mariadb-client)")
    password = "p'a\"s s#\\ü"
    text = mc.render_client_defaults(user="root", password=password, skip_ssl=True)
    with mc.private_defaults_file(text, parent=str(tmp_path)) as path:
        out = subprocess.run([program, "--defaults-extra-file=" + path, "--print-defaults"],
                             capture_output=True, check=True).stdout.decode("utf-8")
    assert " --password=" + password + " " in out
    assert " --skip-ssl " in out
