"""MySQL/MariaDB option files (my.cnf): a line-preserving parser and the edits dbtls makes.

The parser follows the rules of the servers' own reader (mysys ``my_default.c``) closely enough that
what we read is what mysqld reads: ``[group]`` headers, ``key=value`` and bare ``key`` flags, full
line comments with ``#`` or ``;``, ``#`` comments after a value unless quoted, one pair of matching
quotes around a value, backslash escapes, and the ``!include FILE`` / ``!includedir DIR`` directives.
Every line keeps its exact text (CRLF, a UTF-8 BOM, odd spacing), so ``render(parse(t)) == t`` and our
edits are reversible byte for byte.

A UTF-8 BOM is kept and otherwise ignored, although MariaDB 10.11 itself refuses such a file
("Found option without preceding group"). Value quoting (:func:`quote_value`, :func:`unquote_value`)
lives in :mod:`.client`, which the client defaults file shares, and is re-exported here.

Files the server itself refuses (an option before any group, a ``[group`` without ``]``, an include
directive without a path) raise :class:`AgentError`: editing them would only hide the real problem.
"""

import posixpath
import re
from typing import Dict, List, Optional, Sequence, Tuple

from dbtls_agent.errors import AgentError
from dbtls_agent.roles.mysql.client import quote_value, unquote_value
from dbtls_agent.roles.mysql.flavor import (
    MYSQL,
    has_require_secure_transport,
    has_tls_version,
    supports_tls13,
)
from dbtls_agent.vocab import MIN_TLS_VERSIONS, KeySpec

BOM = "\ufeff"

#: The drop-in directory the platform's ``/etc/my.cnf`` includes.
PLATFORM_CONF_D = "/etc/mysql/conf.d"
#: The platform's main option file.
PLATFORM_MY_CNF = "/etc/my.cnf"
#: Our drop-in file name; the same name the upstream add-on uses, so a platform that knows the
#: upstream add-on finds TLS settings where it expects them.
SSL_CONFIG_NAME = "ssl-config.cnf"

#: First line of every file dbtls writes; :func:`is_managed_by_dbtls` looks for it.
MANAGED_MARKER = "# Managed by dbtls"
#: Comment line placed right before an ``!includedir`` we added, so only ours is ever removed.
INCLUDEDIR_MARKER = "# dbtls: added the next line; `dbtls disable` removes it"
_INCLUDEDIR_MARKER_NO_EOL = INCLUDEDIR_MARKER + " (file had no final newline)"

# mysys reads lines with fgets(): only "\n" ends a line; the "\r" of CRLF is trailing whitespace.
_LINE_RE = re.compile(r"[^\n]*\n?")

# Kinds of line.
BLANK = "blank"
COMMENT = "comment"
SECTION = "section"
OPTION = "option"
INCLUDE = "include"
INCLUDEDIR = "includedir"
DIRECTIVE = "directive"  # an unknown ``!word`` line: the server silently skips it, so do we


class Line(object):
    """One physical line: its exact text plus what the server makes of it."""

    __slots__ = ("raw", "kind", "section", "key", "value", "lineno")

    def __init__(
        self,
        raw: str,
        kind: str,
        section: Optional[str] = None,
        key: Optional[str] = None,
        value: Optional[str] = None,
        lineno: int = 0,
    ) -> None:
        self.raw = raw  # exact text including the line ending (and the BOM on line 1)
        self.kind = kind
        self.section = section  # group the line belongs to (lower case), None before the first
        self.key = key  # option name as written, or the section name for SECTION lines
        self.value = value  # option value after unquoting/unescaping; None for a bare flag;
        # the path for INCLUDE / INCLUDEDIR
        self.lineno = lineno

    @property
    def name(self) -> Optional[str]:
        """The option name normalised for comparisons (see :func:`normalize_name`)."""
        return normalize_name(self.key) if self.kind == OPTION and self.key else None

    def __repr__(self):
        return "Line({!r}, {!r})".format(self.kind, self.raw)


def normalize_name(name: str) -> str:
    """Compare option names the way the server does: ``-`` equals ``_``, a ``loose-`` prefix
    only means "ignore if unknown", and case does not matter for the options we care about."""
    name = name.strip().lower().replace("-", "_")
    if name.startswith("loose_"):
        name = name[len("loose_"):]
    return name


def split_lines(text: str) -> List[str]:
    """Split keeping each line's own ending (``\\n`` or ``\\r\\n``)."""
    return [m.group(0) for m in _LINE_RE.finditer(text) if m.group(0)]


def _strip_eol(raw: str) -> str:
    if raw.endswith("\r\n"):
        return raw[:-2]
    return raw[:-1] if raw.endswith("\n") else raw


def _remove_end_comment(text: str) -> str:
    """Cut a ``#`` comment that is not inside quotes, as mysys does for option lines."""
    quote = ""
    escape = False
    for i, ch in enumerate(text):
        if ch in "'\"" and not escape:
            if not quote:
                quote = ch
            elif quote == ch:
                quote = ""
        if not quote and ch == "#":
            return text[:i]
        escape = bool(quote) and ch == "\\" and not escape
    return text


def _parse_directive(body: str, lineno: int) -> Line:
    rest = body[1:].lstrip()
    for keyword, kind in (("includedir", INCLUDEDIR), ("include", INCLUDE)):
        if rest.startswith(keyword) and (len(rest) == len(keyword) or rest[len(keyword)].isspace()):
            path = rest[len(keyword):].strip()
            if not path:
                raise AgentError("line {}: '!{}' needs a path".format(lineno, keyword))
            return Line("", kind, value=path, lineno=lineno)
    return Line("", DIRECTIVE, lineno=lineno)


def parse(text: str) -> List[Line]:
    """Parse option-file text into lines; ``"".join(l.raw for l in parse(t)) == t``."""
    lines: List[Line] = []
    section: Optional[str] = None
    for index, raw in enumerate(split_lines(text)):
        lineno = index + 1
        body = _strip_eol(raw)
        if index == 0 and body.startswith(BOM):
            body = body[len(BOM):]
        stripped = body.strip()
        if not stripped:
            line = Line(raw, BLANK, section, lineno=lineno)
        elif stripped[0] in "#;":
            line = Line(raw, COMMENT, section, lineno=lineno)
        elif stripped[0] == "!":
            line = _parse_directive(stripped, lineno)
            line.raw, line.section = raw, section
        elif stripped[0] == "[":
            end = stripped.find("]")
            if end < 0:
                raise AgentError("line {}: section header {!r} has no closing ']'".format(lineno, stripped))
            # mysys trims only the end of a group name: "[ mysqld]" is the group " mysqld", which
            # mysqld never reads. Text after "]" is ignored. Names compare case-insensitively.
            name = stripped[1:end].rstrip()
            section = name.lower()
            line = Line(raw, SECTION, section, key=name, lineno=lineno)
        else:
            if section is None:
                raise AgentError(
                    "line {}: option {!r} comes before any [section]; mysqld refuses such a file".format(
                        lineno, stripped))
            content = _remove_end_comment(stripped)
            if "=" in content:
                key, _, raw_value = content.partition("=")
                line = Line(raw, OPTION, section, key=key.strip(), value=unquote_value(raw_value),
                            lineno=lineno)
            else:
                line = Line(raw, OPTION, section, key=content.strip(), value=None, lineno=lineno)
        lines.append(line)
    return lines


def render(lines: Sequence[Line]) -> str:
    """Inverse of :func:`parse`."""
    return "".join(line.raw for line in lines)


def newline_of(text: str) -> str:
    """The line ending the file already uses, so lines we add match it."""
    match = re.search(r"\r?\n", text)
    return match.group(0) if match else "\n"


def options(text: str, section: str) -> Dict[str, List[Optional[str]]]:
    """Every value of every option in ``section`` (all occurrences in order; the last one wins
    in the server). Keys are normalised names. Does not follow includes."""
    result: Dict[str, List[Optional[str]]] = {}
    wanted = section.lower()
    for line in parse(text):
        if line.kind == OPTION and line.section == wanted and line.name:
            result.setdefault(line.name, []).append(line.value)
    return result


def get_option(text: str, section: str, name: str) -> Optional[str]:
    """The effective value of one option in this file (last occurrence), or None."""
    values = options(text, section).get(normalize_name(name))
    return values[-1] if values else None


class IncludeDirective(object):
    """An ``!include`` / ``!includedir`` line: where it is and what it names."""

    __slots__ = ("kind", "path", "lineno")

    def __init__(self, kind: str, path: str, lineno: int) -> None:
        self.kind = kind
        self.path = path
        self.lineno = lineno

    def __eq__(self, other):
        return isinstance(other, IncludeDirective) and (self.kind, self.path, self.lineno) == (
            other.kind, other.path, other.lineno)

    def __repr__(self):
        return "IncludeDirective({!r}, {!r}, {})".format(self.kind, self.path, self.lineno)


def include_directives(text: str) -> List[IncludeDirective]:
    """All include directives of one file, in order; the caller resolves and reads them."""
    return [IncludeDirective(line.kind, line.value or "", line.lineno)
            for line in parse(text) if line.kind in (INCLUDE, INCLUDEDIR)]


def _same_dir(a: str, b: str) -> bool:
    return a.rstrip("/") == b.rstrip("/") or (a.strip("/") == "" and b.strip("/") == "")


def included_dirs(text: str) -> List[str]:
    """The ``!includedir`` paths of one file, in order."""
    return [d.path for d in include_directives(text) if d.kind == INCLUDEDIR]


def choose_dropin_dir(dirs: Sequence[str], preferred: str = PLATFORM_CONF_D) -> Optional[str]:
    """The directory to put our drop-in into, given the include dirs the server really reads.

    The platform's ``/etc/mysql/conf.d`` when it is included (the platform and the upstream add-on
    put role files there); otherwise the *last* included dir, because its files are read last and
    the last occurrence of an option wins. None means: nothing is included, call
    :func:`ensure_includedir` on the main file first.
    """
    for d in dirs:
        if _same_dir(d, preferred):
            return d.rstrip("/") or "/"
    if dirs:
        return dirs[-1].rstrip("/") or "/"
    return None


def has_includedir(text: str, directory: str) -> bool:
    """True when an active ``!includedir`` names ``directory`` (trailing ``/`` ignored)."""
    return any(_same_dir(d, directory) for d in included_dirs(text))


def ensure_includedir(text: str, directory: str = PLATFORM_CONF_D) -> str:
    """Make ``text`` include ``directory``; unchanged when it already does (idempotent).

    Appended at the end, after a marker comment, like the upstream add-on does: at the end the drop-in
    files are read after everything in my.cnf. A commented-out ``#!includedir`` (the platform's
    cluster scripts comment it out temporarily) is left alone rather than re-enabled, so
    :func:`remove_includedir` can undo exactly what we did. The directory must exist before the
    server next reads this file: MariaDB aborts on an ``!includedir`` of a missing directory.
    """
    if has_includedir(text, directory):
        return text
    nl = newline_of(text)
    shown = directory if directory.endswith("/") else directory + "/"
    if text and not text.endswith("\n"):
        return text + nl + _INCLUDEDIR_MARKER_NO_EOL + nl + "!includedir " + shown + nl
    return text + INCLUDEDIR_MARKER + nl + "!includedir " + shown + nl


def remove_includedir(text: str, directory: str = PLATFORM_CONF_D) -> str:
    """Undo :func:`ensure_includedir`: drop only a marker line plus the directive right after it."""
    lines = parse(text)
    out: List[Line] = []
    strip_final_eol = False
    i = 0
    while i < len(lines):
        line = lines[i]
        marker = _strip_eol(line.raw).strip()
        nxt = lines[i + 1] if i + 1 < len(lines) else None
        if (line.kind == COMMENT and marker in (INCLUDEDIR_MARKER, _INCLUDEDIR_MARKER_NO_EOL)
                and nxt is not None and nxt.kind == INCLUDEDIR and _same_dir(nxt.value or "", directory)):
            if marker == _INCLUDEDIR_MARKER_NO_EOL and i + 2 == len(lines):
                strip_final_eol = True
            i += 2
            continue
        out.append(line)
        i += 1
    result = render(out)
    if strip_final_eol:
        result = _strip_eol(result)
    return result


def is_managed_by_dbtls(text: str) -> bool:
    """True for a file dbtls wrote: its first line is :data:`MANAGED_MARKER`."""
    lines = split_lines(text)
    if not lines:
        return False
    first = _strip_eol(lines[0])
    if first.startswith(BOM):
        first = first[len(BOM):]
    return first.startswith(MANAGED_MARKER)


def classify_dropin(text: Optional[str]) -> str:
    """``"absent"`` (no file or empty), ``"dbtls"`` (ours: safe to replace or delete) or
    ``"foreign"`` (a user's or the upstream add-on's file: back it up, never delete it blindly)."""
    if text is None or not text.strip():
        return "absent"
    return "dbtls" if is_managed_by_dbtls(text) else "foreign"


# --- our drop-in: /etc/mysql/conf.d/ssl-config.cnf ------------------------------------------------

#: TLS <= 1.2 suites for an RSA certificate: forward secrecy and AEAD only. DHE after ECDHE serves old
#: clients without ECDHE (mysqld ships its own DH parameters); the seed's DHE-RSA-AES256-SHA (CBC,
#: SHA-1) is dropped. TLS 1.3 suites are not listed: those defaults are all strong.
RSA_CIPHERS = ("ECDHE-RSA-AES128-GCM-SHA256:ECDHE-RSA-AES256-GCM-SHA384:ECDHE-RSA-CHACHA20-POLY1305:"
               "DHE-RSA-AES128-GCM-SHA256:DHE-RSA-AES256-GCM-SHA384")
#: The same for an ECDSA certificate; an ECDHE-RSA-only list (the seed's) leaves no TLS 1.2 suite
#: such a key can sign, so TLS 1.2 handshakes would fail.
ECDSA_CIPHERS = "ECDHE-ECDSA-AES128-GCM-SHA256:ECDHE-ECDSA-AES256-GCM-SHA384:ECDHE-ECDSA-CHACHA20-POLY1305"

ALLOWED_TLS_VERSIONS = MIN_TLS_VERSIONS
#: Galera SST modes we accept in an ``[sst]`` section. Not DISABLED (see render_ssl_config).
SST_SSL_MODES = ("REQUIRED", "VERIFY_CA", "VERIFY_IDENTITY")

_PLAIN_PATH_RE = re.compile(r"^[A-Za-z0-9/._+,:@-]+$")


def ciphers_for_key(key_type: str) -> str:
    """The ``ssl-cipher`` list matching the server key (``rsa2048``/``rsa3072``/``rsa4096``/``ecdsa-p256``)."""
    spec = KeySpec.of(key_type)
    if spec.is_rsa:
        return RSA_CIPHERS
    if spec.is_ecdsa:
        return ECDSA_CIPHERS
    raise AgentError("key type {!r} is not usable for MySQL TLS; choose rsa2048, rsa3072, rsa4096 or "
                     "ecdsa-p256".format(key_type))


def _path_value(path: str) -> str:
    return path if _PLAIN_PATH_RE.match(path) else quote_value(path)


def _pick_tls_versions(
    tls_versions: Optional[Sequence[str]],
    flavor: str,
    version: Optional[Tuple[int, int, int]],
) -> List[str]:
    tls13 = version is None or supports_tls13(flavor, version)
    if tls_versions is None:
        return list(ALLOWED_TLS_VERSIONS) if tls13 else ["TLSv1.2"]
    chosen = []
    for name in tls_versions:
        canonical = {"tlsv1.2": "TLSv1.2", "tlsv1.3": "TLSv1.3", "1.2": "TLSv1.2", "1.3": "TLSv1.3"}.get(
            name.strip().lower())
        if canonical is None:
            raise AgentError("TLS version {!r} is not allowed; use TLSv1.2 and/or TLSv1.3".format(name))
        if canonical == "TLSv1.3" and not tls13:
            raise AgentError("{} {} does not support TLSv1.3; allow TLSv1.2".format(
                flavor, ".".join(map(str, version or ()))))
        if canonical not in chosen:
            chosen.append(canonical)
    if not chosen:
        raise AgentError("at least one TLS version must be allowed")
    return sorted(chosen)


def render_ssl_config(
    cert_dir: str,
    key_type: str = "rsa2048",
    tls_versions: Optional[Sequence[str]] = None,
    require_tls: bool = False,
    flavor: str = MYSQL,
    version: Optional[Tuple[int, int, int]] = None,
    sst_ssl_mode: Optional[str] = None,
) -> str:
    """Full text of ``/etc/mysql/conf.d/ssl-config.cnf``.

    ``cert_dir`` is the SSL-TLS folder; the server files are ``<cert_dir>/server/{root,server}.crt``
    and ``server.key``. ``version=None`` means "a current server". Options the given server version
    does not know are left out, because mysqld refuses to start on an unknown option; asking for
    one that matters (TLSv1.3, require_tls) on such a version is an error instead.

    Galera: the upstream add-on writes ``[sst] ssl-mode=DISABLED``, which silently sends the full
    state transfer (every row, password hashes) in clear text. We never write that. By default no
    ``[sst]`` section is written, so the SST scripts keep whatever the user configured;
    ``sst_ssl_mode`` (REQUIRED/VERIFY_CA/VERIFY_IDENTITY) adds one that encrypts SST with the same
    files, for clusters whose SST tool (socat/stunnel built with OpenSSL) is known to support it.
    """
    server = posixpath.join(cert_dir, "server")
    versions = _pick_tls_versions(tls_versions, flavor, version)
    if require_tls and version is not None and not has_require_secure_transport(flavor, version):
        raise AgentError("{} {} has no require_secure_transport; require TLS per account instead".format(
            flavor, ".".join(map(str, version))))
    lines = [
        MANAGED_MARKER + ": TLS for this server. dbtls rewrites this file; `dbtls disable` deletes it.",
        "# Put your own settings in another .cnf file: for each option the last value read wins.",
        "[mysqld]",
        "ssl_ca=" + _path_value(posixpath.join(server, "root.crt")),
        "ssl_cert=" + _path_value(posixpath.join(server, "server.crt")),
        "ssl_key=" + _path_value(posixpath.join(server, "server.key")),
        "# TLS 1.2 suites for an {} key; TLS 1.3 uses the library's (strong) defaults".format(
            "ECDSA" if ciphers_for_key(key_type) == ECDSA_CIPHERS else "RSA"),
        "ssl-cipher=" + ciphers_for_key(key_type),
    ]
    if version is None or has_tls_version(flavor, version):
        lines.append("tls_version=" + ",".join(versions))
    else:
        lines.append("# tls_version is not known to this server version; its defaults apply")
    if version is None or has_require_secure_transport(flavor, version):
        lines.append(("" if require_tls else "#") + "require_secure_transport=ON")
    if sst_ssl_mode is not None:
        mode = sst_ssl_mode.strip().upper()
        if mode not in SST_SSL_MODES:
            raise AgentError("Galera SST ssl-mode must be one of {} (dbtls never disables SST TLS)".format(
                ", ".join(SST_SSL_MODES)))
        lines.extend([
            "",
            "[sst]",
            "ssl-mode=" + mode,
            "ssl-ca=" + _path_value(posixpath.join(server, "root.crt")),
            "ssl-cert=" + _path_value(posixpath.join(server, "server.crt")),
            "ssl-key=" + _path_value(posixpath.join(server, "server.key")),
        ])
    return "\n".join(lines) + "\n"
