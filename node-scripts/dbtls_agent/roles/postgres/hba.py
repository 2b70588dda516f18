"""Tokeniser and editor for ``pg_hba.conf`` and Pgpool-II's ``pool_hba.conf``.

Both files hold one rule per line: ``type database user [address [mask]] method [options]``, with
double-quoted tokens, comma lists, ``#`` comments and (PostgreSQL 16+) backslash continuation lines
and ``include``/``include_if_exists``/``include_dir`` directives, which are reported, not followed.

:func:`enable_hostssl` turns every remote ``host`` rule into ``hostssl``. It records the change in
the file itself, so :func:`disable_hostssl` needs nothing else to restore the exact original bytes:

* each physical line of a rewritten rule is kept, commented out, as ``# <marker>-original: <line>``;
* the new rule(s) follow it on lines ending in ``# <marker>-managed``.

Disable deletes the managed lines and uncomments the originals. Enable always starts from the
disabled text, so enabling twice equals enabling once and new options replace old ones. Lines the
transform does not touch keep their bytes, alignment and comments.

What stays as it is, and why:

* ``local`` rules and ``host`` rules for loopback (127.0.0.0/8, ::1, localhost): platform tools
  connect that way without TLS and must keep working.
* ``host … reject``: it refuses every connection already; as ``hostssl`` it would stop matching
  plaintext clients, which could then reach a later, more permissive rule.
* ``hostssl`` (already done), ``hostnossl``/``hostnogssenc`` (an explicit choice for plaintext, so
  they are reported by :func:`plaintext_remote_rules` instead of being rewritten), ``hostgssenc``.
"""

import ipaddress
from typing import Dict, List, NamedTuple, Optional, Sequence, Set, Tuple, Union

from dbtls_agent.errors import AgentError
from dbtls_agent.roles.postgres import hbamatch
from dbtls_agent.roles.postgres.conf import (
    DEFAULT_MARKER,
    check_text,
    detect_eol,
    join_lines,
    original_prefix,
    split_lines,
    strip_bom,
)

POSTGRESQL = "postgresql"
PGPOOL = "pgpool"

_TYPES = {
    POSTGRESQL: ("local", "host", "hostssl", "hostnossl", "hostgssenc", "hostnogssenc"),
    PGPOOL: ("local", "host", "hostssl", "hostnossl"),
}
_METHODS = {
    POSTGRESQL: ("trust", "reject", "md5", "password", "scram-sha-256", "gss", "sspi", "ident",
                 "peer", "pam", "ldap", "radius", "cert", "bsd", "oauth", "crypt", "krb5"),
    PGPOOL: ("trust", "reject", "md5", "password", "scram-sha-256", "cert", "pam", "ldap"),
}
_INCLUDES = ("include", "include_if_exists", "include_dir")
PASSWORD_METHODS = ("md5", "password", "scram-sha-256")
CLIENT_CERT_MODES = ("cert", "password+cert")
_LOOPBACK_NETS = (ipaddress.ip_network("127.0.0.0/8"), ipaddress.ip_network("::1/128"),
                  ipaddress.ip_network("::ffff:127.0.0.0/104"))
_BLANKS = " \t\r\f\v"

Network = Union[ipaddress.IPv4Network, ipaddress.IPv6Network]

Token = NamedTuple("Token", [("text", str), ("quoted", bool)])

# One whitespace-separated field: a comma list of tokens, with its span in the logical line.
Field = NamedTuple("Field", [("tokens", List[Token]), ("raw", str), ("start", int), ("end", int)])

Rule = NamedTuple("Rule", [
    ("lineno", int),            # first physical line, 1-based
    ("last_lineno", int),       # last physical line (differs with backslash continuation)
    ("type", str),
    ("database", str),          # raw field text, e.g. 'all' or 'db1,"my db"'
    ("user", str),
    ("address", Optional[str]),
    ("mask", Optional[str]),
    ("method", str),
    ("options", List[str]),
    ("fields", List[Field]),
    ("managed", bool),          # written by enable_hostssl
])

Include = NamedTuple("Include", [("lineno", int), ("kind", str), ("target", str)])


class HbaOptions(object):
    """How :func:`enable_hostssl` rewrites rules.

    keep_md5_compat: rewrite password rules to ``md5`` instead of ``scram-sha-256``; an md5 rule still
        accepts roles whose secret is SCRAM, so nobody with an md5-hashed password is locked out.
        A rule that already says ``scram-sha-256`` is never weakened.
    client_cert_auth: also demand a client certificate on password rules.
    client_cert_mode: ``"cert"`` (method ``cert``: certificate only, CN must equal the user) or
        ``"password+cert"`` (password method plus ``clientcert=``; not available in pool_hba.conf).
    no_client_cert_addresses: IPs or networks that can never present a client certificate, e.g. the
        Pgpool-II nodes in front of PostgreSQL. A rule inside one of them gets no certificate
        requirement; a rule whose network contains one gets a password-only ``hostssl`` exception
        for it placed right before it. Rules by host name, ``samehost`` or ``samenet`` cannot be
        checked against the list, so while the list is non-empty they stay password-only.
    client_cert_replication: demand certificates on ``replication`` rules too; off by default
        because standbys only send one when their primary_conninfo names sslcert/sslkey.
    server_major: PostgreSQL major version, for the ``clientcert=`` spelling.
    flavor: ``"postgresql"`` for pg_hba.conf, ``"pgpool"`` for pool_hba.conf.
    md5_roles: roles that still log in with an md5 secret (pg_authid, or an md5 entry in Pool-II's
        pool_passwd). Every ``md5``/``password`` rule that becomes ``scram-sha-256`` and names one of
        them gets a copy for that role alone, with method ``md5``, right before it: the role keeps
        logging in (over TLS now), every other role meets ``scram-sha-256``. The md5 method also
        accepts a SCRAM secret (PostgreSQL then runs SCRAM), so a role whose password is reset
        before the next enable run keeps working; that run leaves its rule out.
    role_groups: role -> roles it is a member of (``+group`` tokens); None: no memberships known.
    replication_roles: md5 roles that may replicate (REPLICATION or superuser); only they get a copy
        of a rule for the ``replication`` database alone. None: every md5 role does.
    """

    def __init__(self, keep_md5_compat: bool = False, client_cert_auth: bool = False,
                 client_cert_mode: str = "cert", no_client_cert_addresses: Sequence[str] = (),
                 client_cert_replication: bool = False, server_major: int = 15,
                 flavor: str = POSTGRESQL, md5_roles: Sequence[str] = (),
                 role_groups: Optional[Dict[str, Sequence[str]]] = None,
                 replication_roles: Optional[Sequence[str]] = None) -> None:
        if flavor not in _TYPES:
            raise AgentError("unknown hba flavor {!r}; use 'postgresql' or 'pgpool'".format(flavor))
        if client_cert_mode not in CLIENT_CERT_MODES:
            raise AgentError("client certificate mode must be 'cert' or 'password+cert'")
        if client_cert_auth and flavor == PGPOOL and client_cert_mode != "cert":
            raise AgentError("pool_hba.conf has no clientcert option; use client certificate mode 'cert'")
        self.keep_md5_compat = keep_md5_compat
        self.client_cert_auth = client_cert_auth
        self.client_cert_mode = client_cert_mode
        self.no_client_cert_networks = [_parse_network(a) for a in no_client_cert_addresses]
        self.client_cert_replication = client_cert_replication
        self.server_major = server_major
        self.flavor = flavor
        unwritable = [r for r in md5_roles if not hbamatch.can_write_name(r)]
        if unwritable:
            raise AgentError("role name {!r} cannot be written into an hba file".format(unwritable[0]))
        self.md5_roles = sorted(set(md5_roles))
        self.role_groups = role_groups
        self.replication_roles = None if replication_roles is None else set(replication_roles)


def _parse_network(address: str) -> Network:
    try:
        return ipaddress.ip_network(address.strip(), strict=False)
    except ValueError:
        raise AgentError("{!r} in the no-client-certificate list is not an IP address or network".format(address)) from None


def clientcert_option(server_major: int) -> str:
    """The ``clientcert`` value that verifies the chain and, where possible, the user name.

    PostgreSQL 11 and older know only ``1``; 12 and 13 accept ``verify-full``; 14+ reject ``1``.
    """
    return "clientcert=1" if server_major <= 11 else "clientcert=verify-full"


# --- tokenising -----------------------------------------------------------------------------------

def _logical_lines(body: str, source: str) -> List[Tuple[int, int, str]]:
    """Join backslash-continued lines: returns (first line index, last line index, text).

    A line whose last character is a backslash continues on the next one (PostgreSQL 16+ checks
    this before removing comments, so a commented line can swallow the next line too).
    """
    result = []
    pending = []  # type: List[str]
    first = 0
    lines = split_lines(body)
    for index, (content, _end) in enumerate(lines):
        if not pending:
            first = index
        if content.endswith("\\"):
            pending.append(content[:-1])
            continue
        pending.append(content)
        result.append((first, index, "".join(pending)))
        pending = []
    if pending:
        raise AgentError("{} line {}: the last line ends with a backslash continuation".format(source, first + 1))
    return result


def _tokenise(text: str, lineno: int, source: str) -> List[Field]:
    """Split one logical line into fields; stops at an unquoted ``#``."""
    fields = []
    i, size = 0, len(text)
    while True:
        while i < size and text[i] in _BLANKS:
            i += 1
        if i >= size or text[i] == "#":
            return fields
        start = i
        tokens = []
        while True:
            chars, quoted, in_quote = [], False, False
            while i < size:
                char = text[i]
                if char == '"':
                    in_quote, quoted = not in_quote, True
                elif not in_quote and (char in _BLANKS or char in ",#"):
                    break
                else:
                    chars.append(char)
                i += 1
            if in_quote:
                raise AgentError("{} line {}: unterminated quoted token".format(source, lineno))
            tokens.append(Token("".join(chars), quoted))
            if i < size and text[i] == ",":
                # A comma continues the list, also across blanks after it ("db1, db2").
                i += 1
                while i < size and text[i] in _BLANKS:
                    i += 1
                continue
            break
        fields.append(Field(tokens, text[start:i], start, i))


def _is_ip(text: str) -> bool:
    try:
        ipaddress.ip_address(text)
        return True
    except ValueError:
        return False


def _parse_logical(text: str, first: int, last: int, managed: bool, flavor: str,
                   source: str) -> Union[Rule, Include, None]:
    lineno = first + 1
    if any(ord(c) < 32 and c not in _BLANKS for c in text):
        raise AgentError("{} line {}: control characters in a rule; the file looks corrupted".format(source, lineno))
    fields = _tokenise(text, lineno, source)
    if not fields:
        return None
    kind = fields[0].raw
    if kind in _INCLUDES and flavor == POSTGRESQL:
        if len(fields) != 2:
            raise AgentError("{} line {}: {} needs exactly one file name".format(source, lineno, kind))
        return Include(lineno, kind, fields[1].tokens[0].text)
    if kind not in _TYPES[flavor]:
        raise AgentError("{} line {}: unknown connection type {!r}".format(source, lineno, _clip(kind)))
    need = 4 if kind == "local" else 5
    if len(fields) < need:
        raise AgentError("{} line {}: {} rule has too few fields (need type, database, user{}, method)".format(
            source, lineno, kind, "" if kind == "local" else ", address"))
    address = mask = None
    pos = 3
    if kind != "local":
        address = fields[3].raw
        pos = 4
        if "/" not in address and _is_ip(address):
            # A bare IP address takes its netmask from the next field, as in the old syntax.
            if len(fields) < 6 or not _is_ip(fields[4].raw):
                raise AgentError("{} line {}: IP address {} needs a /prefix or a netmask field".format(
                    source, lineno, address))
            mask = fields[4].raw
            pos = 5
    method = fields[pos].raw
    if method not in _METHODS[flavor]:
        raise AgentError("{} line {}: unknown authentication method {!r}".format(source, lineno, _clip(method)))
    options = [f.raw for f in fields[pos + 1:]]
    for option in options:
        if "=" not in option:
            raise AgentError("{} line {}: authentication option {!r} is not name=value".format(
                source, lineno, _clip(option)))
    return Rule(lineno, last + 1, kind, fields[1].raw, fields[2].raw, address, mask, method, options,
                fields, managed)


def _clip(text: str, limit: int = 40) -> str:
    return text if len(text) <= limit else text[:limit] + "..."


def _managed_suffix(marker: str) -> str:
    return "# {}-managed".format(marker)


def parse(text: str, flavor: str = POSTGRESQL, source: str = "pg_hba.conf",
          marker: str = DEFAULT_MARKER) -> List[Union[Rule, Include]]:
    """Return the rules and include directives in file order; AgentError on the first bad line.

    The servers reject a whole hba file for one bad line, so refusing early keeps a broken file
    from being made "more broken" and tells the user which line to fix.
    """
    check_text(text, source)
    _bom, body = strip_bom(text)
    suffix = _managed_suffix(marker)
    entries = []  # type: List[Union[Rule, Include]]
    for first, last, logical in _logical_lines(body, source):
        entry = _parse_logical(logical, first, last, logical.rstrip().endswith(suffix), flavor, source)
        if entry is not None:
            entries.append(entry)
    return entries


def rules(text: str, flavor: str = POSTGRESQL, source: str = "pg_hba.conf") -> List[Rule]:
    return [e for e in parse(text, flavor, source) if isinstance(e, Rule)]


# --- classification -------------------------------------------------------------------------------

def rule_network(rule: Rule) -> Optional[Network]:
    """The rule's address as a network, or None for keywords and host names."""
    if rule.address is None:
        return None
    try:
        if rule.mask is not None:
            address = ipaddress.ip_address(rule.address)
            mask = int(ipaddress.ip_address(rule.mask))
            prefix = bin(mask).count("1")
            return ipaddress.ip_network("{}/{}".format(address, prefix), strict=False)
        if "/" in rule.address:
            return ipaddress.ip_network(rule.address, strict=False)
    except ValueError:
        return None
    return None


def _within(inner: Network, outer: Network) -> bool:
    # ipaddress's subnet_of() is 3.7+; the agent must run on 3.6.
    return (inner.version == outer.version and inner.prefixlen >= outer.prefixlen
            and inner.network_address in outer)


def is_loopback(rule: Rule) -> bool:
    """True for rules that can only match connections from this machine's loopback interface."""
    if rule.type == "local":
        return True
    if rule.address is not None and rule.address.lower() == "localhost":
        return True
    network = rule_network(rule)
    return network is not None and any(_within(network, lo) for lo in _LOOPBACK_NETS)


def plaintext_remote_rules(text: str, flavor: str = POSTGRESQL, source: str = "pg_hba.conf") -> List[Rule]:
    """Rules that still let a remote client in without TLS (for verification after enabling)."""
    return [r for r in rules(text, flavor, source)
            if r.type in ("host", "hostnossl", "hostnogssenc") and r.method != "reject" and not is_loopback(r)]


# --- rewriting ------------------------------------------------------------------------------------

def _password_method(method: str, options: HbaOptions) -> str:
    if method not in PASSWORD_METHODS:
        return method
    if options.keep_md5_compat and method != "scram-sha-256":
        return "md5"
    return "scram-sha-256"


def _wants_client_cert(rule: Rule, options: HbaOptions) -> bool:
    if not options.client_cert_auth or rule.method not in PASSWORD_METHODS:
        return False
    if not options.client_cert_replication and any(
            t.text == "replication" and not t.quoted for t in rule.fields[1].tokens):
        return False
    network = rule_network(rule)
    if network is None and rule.address != "all" and options.no_client_cert_networks:
        return False  # host name / samehost / samenet: cannot prove Pgpool is outside it
    if network is not None and any(_within(network, n) for n in options.no_client_cert_networks):
        return False
    return True


def _exceptions_for(rule: Rule, options: HbaOptions) -> List[Network]:
    """No-certificate networks that fall inside a rule about to demand certificates."""
    network = rule_network(rule)
    if network is None:  # only "all" gets here with a non-empty list
        return list(options.no_client_cert_networks)
    return [n for n in options.no_client_cert_networks if _within(n, network)]


def _respace(line: str, fields: List[Field], changes: Dict[int, str], append: str = "") -> str:
    """Replace fields by index and keep the columns after them where they were.

    When a field grows (``host`` -> ``hostssl``) the run of spaces after it shrinks by as much (never
    below one space), and grows when a field shrinks, so an aligned table stays aligned. Tabs are
    left alone. A replacement of "" deletes the field together with the blanks before it.
    """
    out = []
    pos = 0
    carry = 0  # characters the text written so far sticks out past the original columns
    for index, field in enumerate(fields):
        gap = line[pos:field.start]
        pos = field.end
        new = changes.get(index, field.raw)
        if index in changes and new == "":
            carry -= len(gap) + len(field.raw)
            continue
        # Only runs of two or more spaces are treated as alignment; a single space stays single.
        if carry and len(gap) > 1 and set(gap) == {" "}:
            target = max(1, len(gap) - carry)
            carry -= len(gap) - target
            gap = " " * target
        out.append(gap + new)
        carry += len(new) - len(field.raw)
    return "".join(out) + append


def _render(rule: Rule, physical: List[str], changes: Dict[int, str], append: str) -> str:
    """The rewritten rule as one line; continuation lines are joined with single spaces."""
    if len(physical) == 1:
        return _respace(physical[0][:rule.fields[-1].end], rule.fields, changes, append)
    parts = [changes.get(i, f.raw) for i, f in enumerate(rule.fields)]
    return " ".join(p for p in parts if p) + append


def _compat_lines(rule: Rule, physical: List[str], options: HbaOptions, changes: Dict[int, str], append: str,
                  method_index: int, emitted: Set[str]) -> List[str]:
    """Per-role ``md5`` copies of one new line, for the md5 roles its user field admits.

    Only a line that turns an ``md5``/``password`` rule into ``scram-sha-256`` gets them: under any
    other method (trust, cert, an explicit scram-sha-256) nothing changes for md5 secrets. A copy
    identical to one written earlier in the file (``emitted``) could never match and is left out.
    """
    if rule.method not in ("md5", "password") or changes.get(method_index) != "scram-sha-256":
        return []
    lines = []
    only_replication = [(t.text, t.quoted) for t in rule.fields[1].tokens] == [("replication", False)]
    for role in options.md5_roles:
        if only_replication and options.replication_roles is not None and role not in options.replication_roles:
            continue
        if hbamatch.user_matches(rule.fields[2].tokens, role, options.role_groups):
            compat = dict(changes)
            compat[2] = hbamatch.name_token(role)
            compat[method_index] = "md5"
            line = _render(rule, physical, compat, append)
            key = " ".join(line.split())
            if key not in emitted:
                emitted.add(key)
                lines.append(line)
    return lines


def _rewrite(rule: Rule, physical: List[str], options: HbaOptions, emitted: Optional[Set[str]] = None) -> List[str]:
    """New line(s) replacing ``rule``: per-role md5 lines, optional exception lines, then the rule."""
    method_index = 4 if rule.mask is None else 5
    emitted = set() if emitted is None else emitted
    password_method = _password_method(rule.method, options)
    changes = {0: "hostssl", method_index: password_method}
    append = ""
    lines = []
    if _wants_client_cert(rule, options):
        for network in _exceptions_for(rule, options):
            exception = {0: "hostssl", 3: network.with_prefixlen, method_index: password_method}
            if rule.mask is not None:
                exception[4] = ""
            lines.extend(_compat_lines(rule, physical, options, exception, "", method_index, emitted))
            lines.append(_render(rule, physical, exception, ""))
        if options.client_cert_mode == "cert":
            changes[method_index] = "cert"
        else:
            append = " " + clientcert_option(options.server_major)
    lines.extend(_compat_lines(rule, physical, options, changes, append, method_index, emitted))
    lines.append(_render(rule, physical, changes, append))
    return lines


def _needs_rewrite(rule: Rule) -> bool:
    return rule.type == "host" and rule.method != "reject" and not is_loopback(rule)


def enable_hostssl(text: str, options: Optional[HbaOptions] = None, marker: str = DEFAULT_MARKER,
                   source: str = "pg_hba.conf") -> str:
    """Require TLS for every remote ``host`` rule; see the module docstring for what is kept."""
    options = options or HbaOptions()
    base = disable_hostssl(text, marker, source)
    check_text(base, source)
    bom, body = strip_bom(base)
    lines = split_lines(body)
    eol = detect_eol(lines)
    prefix, suffix = original_prefix(marker), "  " + _managed_suffix(marker)
    out = []  # type: List[Tuple[str, str]]
    emitted = set()  # type: Set[str]
    for first, last, logical in _logical_lines(body, source):
        entry = _parse_logical(logical, first, last, False, options.flavor, source)
        physical = lines[first:last + 1]
        if not isinstance(entry, Rule) or not _needs_rewrite(entry):
            out.extend(physical)
            continue
        out.extend((prefix + content, end) for content, end in physical[:-1])
        last_content, last_end = physical[-1]
        out.append((prefix + last_content, last_end or eol))
        new_lines = _rewrite(entry, [c for c, _e in physical], options, emitted)
        for new in new_lines[:-1]:
            out.append((new + suffix, last_end or eol))
        # The final managed line inherits the original terminator; a missing one tells disable to
        # drop the newline added above.
        out.append((new_lines[-1] + suffix, last_end))
    return bom + join_lines(out)


def disable_hostssl(text: str, marker: str = DEFAULT_MARKER, source: str = "pg_hba.conf") -> str:
    """Undo :func:`enable_hostssl` byte for byte; text without markers is returned unchanged."""
    check_text(text, source)
    bom, body = strip_bom(text)
    prefix, suffix = original_prefix(marker), _managed_suffix(marker)
    out = []  # type: List[Tuple[str, str]]
    for content, end in split_lines(body):
        if content.rstrip().endswith(suffix) and not content.startswith(prefix):
            if not end and out:
                out[-1] = (out[-1][0], "")
            continue
        if content.startswith(prefix):
            out.append((content[len(prefix):], end))
        else:
            out.append((content, end))
    return bom + join_lines(out)


def md5_rule_roles(text: str, roles: Sequence[str], flavor: str = POSTGRESQL, source: str = "pg_hba.conf") -> List[str]:
    """Which of ``roles`` have a managed ``md5`` rule naming them alone (the per-role rules)."""
    wanted = set(roles)
    found = set()
    for rule in rules(text, flavor, source):
        tokens = rule.fields[2].tokens
        if rule.managed and rule.method == "md5" and len(tokens) == 1 and tokens[0].text in wanted and (
                tokens[0].quoted or tokens[0].text != "all"):
            found.add(tokens[0].text)
    return sorted(found)
