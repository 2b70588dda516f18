"""SQL for ``user-cert``: make a MySQL account require a client certificate, and undo it exactly.

Also home of the SQL quoting used by every MySQL-side module: account names, paths and certificate
subjects come from users and the file system, so they are always passed through
:func:`sql_literal`, never pasted into SQL text.
"""

from typing import Dict, Iterable, List, Optional, Sequence, Tuple

from dbtls_agent.errors import AgentError
from dbtls_agent.roles.mysql.client import parse_batch_output

# MySQL's escapes inside '...' in the default sql_mode. Quotes are doubled rather than backslashed so
# a literal without backslashes means the same with NO_BACKSLASH_ESCAPES.
_MYSQL_ESCAPES = {"\\": "\\\\", "\0": "\\0", "\n": "\\n", "\r": "\\r", "\x1a": "\\Z", "'": "''"}
_MYSQL_UNESCAPES = {"0": "\0", "b": "\b", "n": "\n", "r": "\r", "t": "\t", "Z": "\x1a"}


def sql_literal(value: str, backslash_escapes: bool = True) -> str:
    """Quote ``value`` as a SQL string literal.

    ``backslash_escapes=True``: MySQL/MariaDB in their default sql_mode (backslash is an escape).
    ``False``: standard SQL, for ProxySQL's admin interface (SQLite underneath) or a server running
    with NO_BACKSLASH_ESCAPES; there only ``'`` needs doubling and a NUL cannot be written at all.
    Non-ASCII text is kept as is: the client must talk utf8mb4 (see :mod:`.client`).
    """
    try:
        value.encode("utf-8")
    except UnicodeEncodeError:
        raise AgentError("{!r} is not valid UTF-8 text and cannot be sent to the server".format(value)) from None
    if backslash_escapes:
        return "'" + "".join(_MYSQL_ESCAPES.get(ch, ch) for ch in value) + "'"
    if "\0" in value:
        raise AgentError("a NUL character cannot be written in a standard SQL string literal")
    return "'" + value.replace("'", "''") + "'"


def parse_sql_literal(text: str, backslash_escapes: bool = True) -> str:
    """Read back one quoted literal (``'...'``) the way the server does; used to test the quoting."""
    if len(text) < 2 or text[0] != "'" or text[-1] != "'":
        raise ValueError("not a single-quoted literal: {!r}".format(text))
    body = text[1:-1]
    out = []
    i = 0
    while i < len(body):
        ch = body[i]
        if ch == "\\" and backslash_escapes and i + 1 < len(body):
            nxt = body[i + 1]
            # \% and \_ keep their backslash (they matter only to LIKE); anything else maps to itself.
            out.append(_MYSQL_UNESCAPES.get(nxt, "\\" + nxt if nxt in "%_" else nxt))
            i += 2
        elif ch == "'":
            if body[i + 1:i + 2] != "'":
                raise ValueError("unescaped quote inside literal: {!r}".format(text))
            out.append("'")
            i += 2
        else:
            out.append(ch)
            i += 1
    return "".join(out)


def sql_identifier(name: str) -> str:
    """Quote a table/column name with backticks (a backtick inside is doubled)."""
    if not name or "\0" in name:
        raise AgentError("invalid SQL identifier {!r}".format(name))
    return "`" + name.replace("`", "``") + "`"


def account_name(user: str, host: str) -> str:
    """``'user'@'host'`` with both parts quoted."""
    return "{}@{}".format(sql_literal(user), sql_literal(host))


def oneline_subject(pairs: Iterable[Tuple[str, str]]) -> str:
    """OpenSSL's one-line subject (``/C=DE/O=Acme, Inc/CN=bob``), the only form REQUIRE SUBJECT
    matches (``CN=bob`` without the slash never matches). ``pairs`` are
    (short name, value) in certificate order."""
    return "".join("/{}={}".format(k, v) for k, v in pairs)


def cn_subject(common_name: str) -> str:
    """The subject of a client certificate that has only a CN, as our CA issues them."""
    if not common_name:
        raise AgentError("the client certificate common name must not be empty")
    return oneline_subject([("CN", common_name)])


class AccountTls(object):
    """One ``user@host`` row and its TLS requirement as stored in mysql.user
    (a view over mysql.global_priv on MariaDB 10.4+)."""

    __slots__ = ("user", "host", "ssl_type", "subject", "issuer", "cipher")

    def __init__(
        self,
        user: str,
        host: str,
        ssl_type: str = "",
        subject: str = "",
        issuer: str = "",
        cipher: str = "",
    ) -> None:
        self.user = user
        self.host = host
        self.ssl_type = (ssl_type or "").upper()  # '' (NONE), ANY (SSL), X509 or SPECIFIED
        self.subject = subject or ""
        self.issuer = issuer or ""
        self.cipher = cipher or ""

    def to_dict(self) -> Dict[str, str]:
        """JSON-ready form, kept in the state directory until ``user-cert --undo``."""
        return {k: getattr(self, k) for k in self.__slots__}

    @classmethod
    def from_dict(cls, data: Dict[str, str]) -> "AccountTls":
        return cls(**{k: data.get(k, "") for k in cls.__slots__})

    def require_clause(self) -> str:
        """The REQUIRE clause that recreates this row's requirement."""
        if self.ssl_type in ("", "NONE"):
            return "REQUIRE NONE"
        if self.ssl_type == "ANY":
            return "REQUIRE SSL"
        if self.ssl_type == "X509":
            return "REQUIRE X509"
        if self.ssl_type == "SPECIFIED":
            parts = []
            for word, value in (("SUBJECT", self.subject), ("ISSUER", self.issuer), ("CIPHER", self.cipher)):
                if value:
                    parts.append("{} {}".format(word, sql_literal(value)))
            # SPECIFIED with every value empty behaves like X509 in the server.
            return "REQUIRE " + " AND ".join(parts) if parts else "REQUIRE X509"
        raise AgentError("unknown ssl_type {!r} for {}".format(self.ssl_type, account_name(self.user, self.host)))

    def __eq__(self, other):
        return isinstance(other, AccountTls) and self.to_dict() == other.to_dict()

    def __repr__(self):
        return "AccountTls({!r})".format(self.to_dict())


def accounts_query(user: str) -> str:
    """Every host entry of ``user`` with its current requirement (same columns on MySQL and MariaDB)."""
    return ("SELECT User, Host, ssl_type, CAST(x509_subject AS CHAR), CAST(x509_issuer AS CHAR), "
            "CAST(ssl_cipher AS CHAR) FROM mysql.user WHERE User = {} ORDER BY Host".format(sql_literal(user)))


def parse_accounts(output: str) -> List[AccountTls]:
    """Rows of :func:`accounts_query` (``--batch --skip-column-names``); two-column
    ``SELECT User, Host`` rows are accepted too."""
    accounts = []
    for row in parse_batch_output(output):
        if len(row) not in (2, 6):
            raise AgentError("unexpected mysql.user row with {} columns: {!r}".format(len(row), row))
        cells = [c or "" for c in row]
        accounts.append(AccountTls(*cells))
    return accounts


def _accounts_or_fail(accounts: Sequence[AccountTls], user_hint: str = "") -> Sequence[AccountTls]:
    if not accounts:
        raise AgentError("no MySQL account named {!r}; create it first or check the user name".format(user_hint))
    return accounts


def require_cert_statements(
    accounts: Sequence[AccountTls],
    subject: Optional[str] = None,
    issuer: Optional[str] = None,
) -> List[str]:
    """``ALTER USER ... REQUIRE X509`` (any certificate from a trusted CA) or, with ``subject``,
    ``REQUIRE SUBJECT '/.../CN=name'`` (+ ``AND ISSUER``) for every host entry of the user."""
    user = accounts[0].user if accounts else ""
    _accounts_or_fail(accounts, user)
    for value, what in ((subject, "subject"), (issuer, "issuer")):
        if value is not None and not value.startswith("/"):
            raise AgentError("the certificate {} must be in /KEY=value form (e.g. /CN=alice), got {!r}".format(
                what, value))
    if subject or issuer:
        parts = []
        if subject:
            parts.append("SUBJECT " + sql_literal(subject))
        if issuer:
            parts.append("ISSUER " + sql_literal(issuer))
        clause = "REQUIRE " + " AND ".join(parts)
    else:
        clause = "REQUIRE X509"
    return ["ALTER USER {} {}".format(account_name(a.user, a.host), clause) for a in accounts]


def restore_statements(previous: Sequence[AccountTls]) -> List[str]:
    """Put back the requirements recorded before :func:`require_cert_statements` ran."""
    return ["ALTER USER {} {}".format(account_name(a.user, a.host), a.require_clause()) for a in previous]


def require_none_statements(accounts: Sequence[AccountTls]) -> List[str]:
    """Drop any requirement (when nothing was recorded)."""
    return ["ALTER USER {} REQUIRE NONE".format(account_name(a.user, a.host)) for a in accounts]
