"""user-cert SQL: quoting that survives hostile names, REQUIRE clauses, and exact restore."""

import sqlite3

import pytest

from dbtls_agent.errors import AgentError
from dbtls_agent.roles.mysql import users as mu

TRICKY = [
    "plain",
    "",
    "it's",
    "''",
    'dou"ble',
    "back\\slash",
    "trailing\\",
    "\\'",
    "nul\0byte",
    "new\nline",
    "cr\rret",
    "ctrl-z\x1a",
    "tab\there",
    "non-ASCII ü€ 日本",
    "percent\\%_under",
    "%",
    "`backtick`",
    "'; DROP USER 'root'@'%'; --",
]


@pytest.mark.parametrize("value", TRICKY)
def test_mysql_literal_round_trip(value):
    literal = mu.sql_literal(value)
    assert mu.parse_sql_literal(literal) == value
    # Nothing in the literal can end it early or start a new statement line.
    assert "\n" not in literal and "\0" not in literal
    assert literal.startswith("'") and literal.endswith("'")


@pytest.mark.parametrize("value", [v for v in TRICKY if "\0" not in v])
def test_standard_literal_round_trip_in_real_sqlite(value):
    """ProxySQL's admin SQL is SQLite: no backslash escapes, only doubled quotes."""
    literal = mu.sql_literal(value, backslash_escapes=False)
    assert mu.parse_sql_literal(literal, backslash_escapes=False) == value
    assert sqlite3.connect(":memory:").execute("SELECT " + literal).fetchone()[0] == value


@pytest.mark.parametrize("value, literal", [
    ("it's", "'it''s'"),
    ("a\\b", "'a\\\\b'"),
    ("a\0b", "'a\\0b'"),
    ("a\nb\rc\x1ad", "'a\\nb\\rc\\Zd'"),
    ("ü", "'ü'"),
])
def test_mysql_literal_exact(value, literal):
    assert mu.sql_literal(value) == literal


def test_literal_refusals():
    with pytest.raises(AgentError, match="NUL"):
        mu.sql_literal("a\0b", backslash_escapes=False)
    with pytest.raises(AgentError, match="UTF-8"):
        mu.sql_literal("bad \udcff surrogate")


@pytest.mark.parametrize("text", ["no quotes", "'unterminated", "'a'b'"])
def test_parse_sql_literal_rejects(text):
    with pytest.raises(ValueError):
        mu.parse_sql_literal(text)


@pytest.mark.parametrize("name, quoted", [("user", "`user`"), ("we`ird", "`we``ird`"), ("mysql user", "`mysql user`")])
def test_sql_identifier(name, quoted):
    assert mu.sql_identifier(name) == quoted


def test_sql_identifier_refuses():
    for bad in ("", "a\0b"):
        with pytest.raises(AgentError):
            mu.sql_identifier(bad)


def test_subjects():
    assert mu.cn_subject("webadmin") == "/CN=webadmin"
    assert mu.oneline_subject([("C", "DE"), ("O", "Acme, Inc"), ("OU", "DB"), ("CN", "bob")]) == "/C=DE/O=Acme, Inc/OU=DB/CN=bob"
    with pytest.raises(AgentError):
        mu.cn_subject("")


ROWS = "app\t%\t\tNULL\tNULL\tNULL\napp\tlocalhost\tX509\t\t\t\napp\t10.0.0.%\tSPECIFIED\t/CN=app\t/CN=Old CA\t\n"


def test_accounts_query_quotes_user():
    assert mu.accounts_query("o'hara") == (
        "SELECT User, Host, ssl_type, CAST(x509_subject AS CHAR), CAST(x509_issuer AS CHAR), "
        "CAST(ssl_cipher AS CHAR) FROM mysql.user WHERE User = 'o''hara' ORDER BY Host")


def test_parse_accounts():
    accounts = mu.parse_accounts(ROWS)
    assert [a.to_dict() for a in accounts] == [
        {"user": "app", "host": "%", "ssl_type": "", "subject": "", "issuer": "", "cipher": ""},
        {"user": "app", "host": "localhost", "ssl_type": "X509", "subject": "", "issuer": "", "cipher": ""},
        {"user": "app", "host": "10.0.0.%", "ssl_type": "SPECIFIED", "subject": "/CN=app", "issuer": "/CN=Old CA",
         "cipher": ""},
    ]
    assert mu.parse_accounts("app\t%\n") == [mu.AccountTls("app", "%")]
    with pytest.raises(AgentError):
        mu.parse_accounts("app\t%\tX509\n")


def test_require_x509_for_every_host():
    accounts = mu.parse_accounts(ROWS)
    assert mu.require_cert_statements(accounts) == [
        "ALTER USER 'app'@'%' REQUIRE X509",
        "ALTER USER 'app'@'localhost' REQUIRE X509",
        "ALTER USER 'app'@'10.0.0.%' REQUIRE X509",
    ]


def test_require_subject_and_issuer():
    accounts = [mu.AccountTls("o'hara", "%")]
    assert mu.require_cert_statements(accounts, subject=mu.cn_subject("o'hara")) == [
        "ALTER USER 'o''hara'@'%' REQUIRE SUBJECT '/CN=o''hara'"]
    assert mu.require_cert_statements(accounts, subject="/CN=x", issuer="/CN=dbtls CA") == [
        "ALTER USER 'o''hara'@'%' REQUIRE SUBJECT '/CN=x' AND ISSUER '/CN=dbtls CA'"]


@pytest.mark.parametrize("kwargs", [{"subject": "CN=alice"}, {"issuer": "CN=ca"}])
def test_subject_without_slash_is_refused(kwargs):
    """MariaDB never matches 'CN=alice' against '/CN=alice': REQUIRE SUBJECT compares the slash form."""
    with pytest.raises(AgentError, match="/KEY=value"):
        mu.require_cert_statements([mu.AccountTls("a", "%")], **kwargs)


def test_no_accounts_is_an_error():
    with pytest.raises(AgentError, match="no MySQL account"):
        mu.require_cert_statements([])


@pytest.mark.parametrize("record, clause", [
    (mu.AccountTls("u", "%", ""), "REQUIRE NONE"),
    (mu.AccountTls("u", "%", "ANY"), "REQUIRE SSL"),
    (mu.AccountTls("u", "%", "x509"), "REQUIRE X509"),
    (mu.AccountTls("u", "%", "SPECIFIED", subject="/CN=u"), "REQUIRE SUBJECT '/CN=u'"),
    (mu.AccountTls("u", "%", "SPECIFIED", "/CN=u", "/CN=ca", "ECDHE-RSA-AES128-GCM-SHA256"),
     "REQUIRE SUBJECT '/CN=u' AND ISSUER '/CN=ca' AND CIPHER 'ECDHE-RSA-AES128-GCM-SHA256'"),
    (mu.AccountTls("u", "%", "SPECIFIED"), "REQUIRE X509"),
])
def test_restore_clause(record, clause):
    assert mu.restore_statements([record]) == ["ALTER USER 'u'@'%' " + clause]
    # survives the JSON state file
    assert mu.AccountTls.from_dict(record.to_dict()) == record


def test_restore_statements_puts_back_each_row():
    previous = mu.parse_accounts(ROWS)
    assert mu.restore_statements(previous) == [
        "ALTER USER 'app'@'%' REQUIRE NONE",
        "ALTER USER 'app'@'localhost' REQUIRE X509",
        "ALTER USER 'app'@'10.0.0.%' REQUIRE SUBJECT '/CN=app' AND ISSUER '/CN=Old CA'",
    ]
    assert mu.require_none_statements(previous)[0] == "ALTER USER 'app'@'%' REQUIRE NONE"


def test_unknown_ssl_type():
    with pytest.raises(AgentError, match="unknown ssl_type"):
        mu.AccountTls("u", "%", "WEIRD").require_clause()
