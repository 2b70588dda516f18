"""Make the database server's own cipher order win: an OpenSSL configuration for mysqld only.

Why: MariaDB and MySQL never set OpenSSL's ``SSL_OP_CIPHER_SERVER_PREFERENCE`` and have no option
for it, so among the suites of ``ssl-cipher`` the *client* picks (testssl.sh 3.0 rates that HIGH).
libssl applies the ``system_default`` section of the OpenSSL configuration to every ``SSL_CTX`` the
server creates (OpenSSL 1.1.1+ loads the file named by ``OPENSSL_CONF``, else the system one, when
mysqld initialises libssl); ``Options = ServerPreference`` there is ORed into the context's options
and mysqld only ever adds options, so it sticks. ``PrioritizeChaCha`` keeps ChaCha20 for clients
that put it first (no AES hardware), as OpenSSL documents for servers with a ChaCha20 suite. Both
are server-only flags: client contexts in the same process (a replica's channel) cannot take them,
so the file sets ``config_diagnostics = 0`` and OpenSSL skips the command there instead of failing.
``NoRenegotiation`` refuses renegotiation, which OpenSSL before 3.0 lets a client start (a cheap way
to make the server spend CPU; testssl's ``secure_client_renego``, seen on MariaDB 10.5 with OpenSSL
1.1.1); OpenSSL 3 refuses client-initiated renegotiation by default, and no client needs it.

How: :func:`render_openssl_conf` writes a file that first ``.include`` s the system configuration
(its providers and, on RHEL-family systems, the crypto policy still apply) and then only adds the
options to the system_default section the system file already names (or to a chain of our own
sections where it names none). A systemd drop-in gives that file to the database service alone
(``Environment=OPENSSL_CONF=...``): no other program on the node changes behaviour. Without
systemd the simulator's service shim reads the same drop-in. Both files are new, so ``disable``
deletes them (ChangeSet) and restarts the server as for ``ssl-config.cnf``.

Parsing and rendering are pure text functions (unit-tested on Debian- and RHEL-shaped files);
:func:`plan`, :func:`write_files`, :func:`pending`, :func:`reload_units` and
:func:`server_order_enforced` are the parts that look at or change the node.
"""

import os
import re
import shutil
import socket
import ssl
from typing import Any, Callable, Dict, List, Optional, Sequence, Tuple

from dbtls_agent import fsio
from dbtls_agent.errors import AgentError
from dbtls_agent.roles.mysql import probe

#: First line of both files dbtls writes here.
MARKER = "# Managed by dbtls"
OPTIONS = ("ServerPreference", "PrioritizeChaCha", "NoRenegotiation")
#: Name of our OpenSSL file, next to the server's drop-in directory (``/etc/mysql`` on the platform).
#: Not ``.cnf``: an ``!includedir`` of that directory would read it as a server option file.
CONF_NAME = "dbtls-openssl.conf"
DROPIN_NAME = "dbtls-openssl.conf"
SYSTEMD_DIR = "/etc/systemd/system"
#: Where the system configuration is when ``openssl version -d`` does not say (Debian, RHEL).
SYSTEM_CANDIDATES = ("/usr/lib/ssl/openssl.cnf", "/etc/ssl/openssl.cnf", "/etc/pki/tls/openssl.cnf")
#: The links from the default section to system_default, each with the section we add where it is missing.
_CHAIN = (("openssl_conf", "dbtls_openssl_init"), ("ssl_conf", "dbtls_ssl"), ("system_default", "dbtls_system_default"))
_INCLUDE_RE = re.compile(r"^\.include\s*(?:=\s*)?(\S.*)$")
_SECTION_RE = re.compile(r"^\[\s*([^\]\s]+)\s*\]")
_KEY_RE = re.compile(r"^([A-Za-z0-9_.:;]+)\s*=\s*(.*)$")

Sections = Dict[str, Dict[str, str]]
Reader = Callable[[str], Optional[str]]


def _strip_comment(line: str) -> str:
    """Drop a ``#`` comment that is not inside quotes or escaped (the OpenSSL parser's rule)."""
    quote = ""
    escaped = False
    for i, ch in enumerate(line):
        if escaped:
            escaped = False
        elif ch == "\\":
            escaped = True
        elif quote:
            quote = "" if ch == quote else quote
        elif ch in "'\"":
            quote = ch
        elif ch == "#":
            return line[:i]
    return line


def _unquote(value: str) -> str:
    value = value.strip()
    if len(value) >= 2 and value[0] == value[-1] and value[0] in "'\"":
        return value[1:-1]
    return value


def parse_config(text: str, path: str, read: Reader, listdir: Callable[[str], List[str]]) -> Sections:
    """The name/value pairs of an OpenSSL configuration, ``.include`` s followed, as OpenSSL merges
    them: a section named again continues, a name given again replaces the earlier value. Only what
    :func:`render_openssl_conf` needs (the chain to system_default and its Options) must be exact."""
    sections = {}  # type: Sections
    _parse(text, path, read, listdir, sections, "default", 0)
    return sections


def _parse(text: str, path: str, read: Reader, listdir: Callable[[str], List[str]], sections: Sections,
           current: str, depth: int) -> str:
    """Add ``text`` to ``sections`` starting in section ``current``; the section it ends in (an
    included file starts where the includer is and leaves the includer where the file ended)."""
    sections.setdefault(current, {})
    for raw in text.splitlines():
        line = _strip_comment(raw).strip()
        include = _INCLUDE_RE.match(line)
        section = _SECTION_RE.match(line)
        pair = _KEY_RE.match(line)
        if include and depth < 8:
            target = _unquote(include.group(1))
            if not os.path.isabs(target):
                target = os.path.join(os.path.dirname(path), target)
            for name in _include_files(target, listdir):
                child = read(name)
                if child is not None:
                    current = _parse(child, name, read, listdir, sections, current, depth + 1)
        elif section:
            current = section.group(1)
            sections.setdefault(current, {})
        elif pair and not line.startswith("."):
            sections[current][pair.group(1)] = _unquote(pair.group(2))
    return current


def _include_files(target: str, listdir: Callable[[str], List[str]]) -> List[str]:
    """A file, or a directory's ``*.cnf`` / ``*.conf`` files in name order (what OpenSSL reads)."""
    try:
        names = listdir(target)
    except OSError:
        return [target]
    return [os.path.join(target, n) for n in sorted(names) if n.endswith((".cnf", ".conf"))]


def merge_options(existing: Optional[str], wanted: Sequence[str] = OPTIONS) -> str:
    """``existing`` Options plus ours, each once, ours last (later flags win)."""
    have = [o.strip() for o in (existing or "").split(",") if o.strip()]
    kept = [o for o in have if o not in wanted]
    return ",".join(kept + list(wanted))


def render_openssl_conf(system_path: Optional[str], sections: Sections, options: Sequence[str] = OPTIONS,
                        why: str = "then the server's ssl-cipher order wins",
                        settings: Sequence[Tuple[str, str]] = ()) -> str:
    """Our ``OPENSSL_CONF``: the system file, then ``Options`` (and ``settings``, e.g. ``MinProtocol``)
    in the section its chain ``openssl_conf`` -> ``ssl_conf`` -> ``system_default`` ends at; missing
    links are ours."""
    lines = [
        MARKER + ": OpenSSL settings of the database server only (its service's OPENSSL_CONF).",
        "# dbtls rewrites this file; `dbtls disable` deletes it. The system configuration comes first,",
        "# so its providers and policies still apply; {}.".format(why),
    ]
    if system_path:
        lines.append(".include " + system_path)
    # The options exist for server contexts only. mysqld's client contexts (replication) get the
    # same system_default, and OpenSSL 3.5 with config_diagnostics = 1 (Debian's openssl.cnf) then
    # fails SSL_CTX_new for them ("bad value ... ServerPreference"); 0 skips the command there.
    lines += ["", "[ default ]", "config_diagnostics = 0"]
    section = "default"
    for key, own in _CHAIN:
        target = sections.get(section, {}).get(key)
        if not target:
            lines += ["", "[ {} ]".format(section), "{} = {}".format(key, own)]
            target = own
        section = target
    lines += ["", "[ {} ]".format(section)]
    if options:
        lines.append("Options = " + merge_options(sections.get(section, {}).get("Options"), options))
    lines += ["{} = {}".format(key, value) for key, value in settings]
    return "\n".join(lines) + "\n"


def render_dropin(conf_path: str, why: str = "server cipher order") -> str:
    """The systemd drop-in that hands ``conf_path`` to the database service only."""
    return "\n".join([
        MARKER + ": the database server reads its own OpenSSL settings ({}).".format(why),
        "# `dbtls disable` deletes this file.",
        "[Service]",
        "Environment=OPENSSL_CONF=" + conf_path,
    ]) + "\n"


def parse_systemctl_show(text: str) -> Dict[str, str]:
    """``systemctl show -p A,B unit`` output as a dict."""
    return dict(line.split("=", 1) for line in text.splitlines() if "=" in line)


def choose_unit(shown: Sequence[Dict[str, str]], flavor_is_mariadb: bool) -> str:
    """The service unit to give a drop-in: a loaded and active one first, then a loaded one,
    else the usual name of the flavour's unit (``mariadb`` / ``mysqld``, the simulator's too)."""
    loaded = [s for s in shown if s.get("LoadState") == "loaded" and s.get("Id")]
    for entry in sorted(loaded, key=lambda s: s.get("ActiveState") != "active"):
        return entry["Id"]
    return "mariadb.service" if flavor_is_mariadb else "mysqld.service"


def openssl_dir(version_d_output: str) -> Optional[str]:
    """OPENSSLDIR from ``openssl version -d`` (``OPENSSLDIR: "/usr/lib/ssl"``)."""
    match = re.search(r'OPENSSLDIR:\s*"([^"]+)"', version_d_output)
    return match.group(1) if match else None


def supports_include(version_output: str) -> bool:
    """``.include`` and ``PrioritizeChaCha`` need OpenSSL 1.1.1+ (``OpenSSL 3.0.13 30 Jan 2024``)."""
    match = re.search(r"OpenSSL (\d+)\.(\d+)\.(\d+)([a-z]?)", version_output)
    if not match:
        return False
    major, minor, patch = (int(match.group(i)) for i in (1, 2, 3))
    return (major, minor, patch) >= (1, 1, 1)


# --- the node --------------------------------------------------------------------------------------

Runner = Callable[[Sequence[str]], Tuple[int, str, str]]


def plan(run: Runner, dropin_dir: str, flavor_is_mariadb: bool) -> Dict[str, str]:
    """Paths and texts of both files for this node, or ``{"skip": reason}`` where they cannot work."""
    binary = shutil.which("mariadbd") or shutil.which("mysqld") or "/usr/sbin/mariadbd"
    code, out, err = run(["ldd", binary])
    if (code == 0 and "libssl" not in out) or "not a dynamic executable" in out + err:
        return {"skip": "{} does not use OpenSSL's libssl (wolfSSL/static build)".format(binary)}
    code, out, err = run(["openssl", "version"])
    if code != 0 or not supports_include(out):
        return {"skip": "OpenSSL 1.1.1 or later is needed ({})".format((out or err).strip() or "no openssl")}
    code, out, _ = run(["openssl", "version", "-d"])
    candidates = ([os.path.join(openssl_dir(out) or "", "openssl.cnf")] if code == 0 and openssl_dir(out) else [])
    system = next((p for p in candidates + list(SYSTEM_CANDIDATES) if os.path.isfile(p)), None)
    sections = {}  # type: Sections
    text = fsio.read_text(system) if system else None
    if system and text is not None:
        sections = parse_config(text, system, fsio.read_text, os.listdir)
    shown = []
    if os.path.isdir("/run/systemd/system"):
        for name in ("mariadb.service", "mysql.service", "mysqld.service"):
            code, out, _ = run(["systemctl", "show", "-p", "Id,LoadState,ActiveState", name])
            if code == 0:
                shown.append(parse_systemctl_show(out))
    unit = choose_unit(shown, flavor_is_mariadb)
    conf = os.path.join(os.path.dirname(dropin_dir.rstrip("/")) or "/", CONF_NAME)
    return {"conf": conf, "conf_text": render_openssl_conf(system, sections), "unit": unit,
            "dropin": os.path.join(SYSTEMD_DIR, unit + ".d", DROPIN_NAME), "dropin_text": render_dropin(conf)}


def write_files(changes: Any, undo: List[Any], dropin_dir: str, flavor_is_mariadb: bool,
                run: Runner) -> Dict[str, Any]:
    """Write both files through ``changes`` (backed up first, atomic, 0644 root); their bytes before
    this run go to ``undo``. ``changed`` tells the caller a restart is due; ``skip`` why nothing was
    written (the server then keeps working, with the client's choice among our strong suites)."""
    wanted = plan(run, dropin_dir, flavor_is_mariadb)
    if "skip" in wanted:
        return {"skip": wanted["skip"], "changed": False, "created_dirs": []}
    created = []
    unit_dir = os.path.dirname(wanted["dropin"])
    if not os.path.isdir(unit_dir):
        fsio.ensure_dir(unit_dir, 0o755)
        created.append(unit_dir)
    owner = (0, 0) if os.geteuid() == 0 else None
    changed = False
    for path, text in ((wanted["conf"], wanted["conf_text"]), (wanted["dropin"], wanted["dropin_text"])):
        undo.append((path, fsio.read_bytes(path)))
        changed = changes.write(path, text.encode(), mode=0o644, owner=owner) or changed
    return {"changed": changed, "unit": wanted["unit"], "openssl_conf": wanted["conf"], "dropin": wanted["dropin"],
            "created_dirs": created}


def pending(dropin_dir: str, flavor_is_mariadb: bool, run: Runner) -> bool:
    """True when :func:`write_files` would change a file, so the offer stage restarts the server
    (for forecasts such as roles/mysql/forecast.offer_restarts)."""
    wanted = plan(run, dropin_dir, flavor_is_mariadb)
    return "skip" not in wanted and any(fsio.read_text(path) != text for path, text in (
        (wanted["conf"], wanted["conf_text"]), (wanted["dropin"], wanted["dropin_text"])))


def reload_units(run: Runner) -> None:
    """``systemctl daemon-reload`` where systemd runs, so a restart sees drop-ins written or removed."""
    if os.path.isdir("/run/systemd/system"):
        run(["systemctl", "daemon-reload"])


def _tls12_cipher(host: str, port: int, ca_file: str, ciphers: str, timeout: float) -> str:
    context = probe.make_context(ca_file)
    context.set_ciphers(ciphers)
    versions = getattr(ssl, "TLSVersion", None)  # 3.7+; OP_NO_TLSv1_3 does the same on 3.6
    if versions is not None:
        context.maximum_version = versions.TLSv1_2
    else:
        context.options |= getattr(ssl, "OP_NO_TLSv1_3", 0)
    raw = socket.create_connection((host, port), timeout=timeout)
    try:
        raw.settimeout(timeout)
        probe.parse_greeting(probe.read_packet(raw))
        raw.sendall(probe.ssl_request_packet())
        with context.wrap_socket(raw, server_hostname=host) as tls:
            cipher = tls.cipher()
            return cipher[0] if cipher else ""
    finally:
        raw.close()


def server_order_enforced(host: str, port: int, ca_file: str, cipher_list: str, timeout: float = 10.0) -> Optional[bool]:
    """Two TLS 1.2 handshakes offering the server's first two suites in opposite orders: True when
    the server picks the same one both times. None when it cannot be told (TLS 1.2 off, one suite)."""
    suites = [c for c in cipher_list.split(":") if c][:2]
    if len(suites) < 2:
        return None
    try:
        first = _tls12_cipher(host, port, ca_file, ":".join(suites), timeout)
        second = _tls12_cipher(host, port, ca_file, ":".join(reversed(suites)), timeout)
    except (OSError, ssl.SSLError, ValueError, AgentError):
        return None
    return first == second
