"""Facts about the local PostgreSQL server: is it running, which version, which files, which log.

Paths come from the running server (``SHOW config_file`` and friends, as the postgres OS user over
the local socket), and only when it does not answer from the platform's layout (/var/lib/pgsql/data).
Processes are recognised by /proc/*/comm, because a Pgpool-II node also has a ``.s.PGSQL.5432``
socket and would answer SHOW with its backend's paths.
"""

import os
import re
from typing import Any, Dict, List, Optional

from dbtls_agent import fsio
from dbtls_agent.certs import nodeinfo
from dbtls_agent.errors import AgentError
from dbtls_agent.roles.postgres import client

PLATFORM_DATA_DIR = "/var/lib/pgsql/data"
SERVICE_USER = "postgres"
LOG_CANDIDATES = ("/var/log/postgresql/postgresql.log", "/var/lib/pgsql/data/log/postgresql.log")


def processes(name: str) -> List[int]:
    """PIDs whose executable name is ``name`` (postgres, pgpool, ...)."""
    found = []
    try:
        entries = os.listdir("/proc")
    except OSError:
        return found
    for entry in entries:
        if not entry.isdigit():
            continue
        try:
            with open("/proc/{}/comm".format(entry)) as handle:
                if handle.read().strip() == name:
                    found.append(int(entry))
        except OSError:
            continue
    return found


def compute_type() -> Optional[str]:
    text = fsio.read_text(nodeinfo.METAINF_PATH) or ""
    return nodeinfo.parse_env_file(text).get("COMPUTE_TYPE")


def parse_version(text: str) -> Optional[str]:
    match = re.search(r"(\d+(?:\.\d+)*)", text or "")
    return match.group(1) if match else None


def major_of(version: Optional[str]) -> int:
    if not version:
        return 0
    parts = version.split(".")
    return int(parts[0]) if parts[0].isdigit() else 0


def _sql(query: str) -> List[List[str]]:
    return client.psql(query, os_user=SERVICE_USER)


def facts(require_running: bool = False) -> Optional[Dict[str, Any]]:
    """Everything the postgres role needs; None when no PostgreSQL belongs on this node."""
    running = bool(processes("postgres")) and client.find_socket_dir() is not None
    if not running and compute_type() != "postgres" and not os.path.isfile(
            os.path.join(PLATFORM_DATA_DIR, "PG_VERSION")):
        if require_running:
            raise AgentError("no PostgreSQL server on this node (no postgres process, COMPUTE_TYPE is not postgres)")
        return None
    info = {"role": "postgres", "running": running, "service_user": SERVICE_USER}  # type: Dict[str, Any]
    if running:
        rows = _sql("SELECT current_setting('server_version'), current_setting('config_file'), "
                    "current_setting('hba_file'), current_setting('data_directory'), "
                    "pg_is_in_recovery()::text, coalesce(pg_current_logfile(), '')")
        version, conf, hba, data, recovery, logfile = rows[0]
        info.update({"version": parse_version(version), "config_file": conf, "hba_file": hba,
                     "data_directory": data, "in_recovery": recovery == "true", "paths_from": "server",
                     "log_file": logfile or _stderr_log(data)})
    else:
        if require_running:
            raise AgentError("PostgreSQL is not running on this node; start it first (jem service start)")
        data = PLATFORM_DATA_DIR
        pg_version = (fsio.read_text(os.path.join(data, "PG_VERSION")) or "").strip() or None
        info.update({"version": pg_version, "config_file": os.path.join(data, "postgresql.conf"),
                     "hba_file": os.path.join(data, "pg_hba.conf"), "data_directory": data,
                     "in_recovery": os.path.exists(os.path.join(data, "standby.signal")),
                     "paths_from": "default", "log_file": _stderr_log(data)})
    info["major"] = major_of(info["version"])
    info["auto_conf"] = os.path.join(info["data_directory"], "postgresql.auto.conf")
    return info


def _stderr_log(data_dir: str) -> Optional[str]:
    """The file the postmaster's stderr goes to (pg_ctl -l), else a platform default that exists."""
    target = fsio.process_stderr_file(fsio.read_text(os.path.join(data_dir, "postmaster.pid")) or "")
    if target:
        return target
    for path in LOG_CANDIDATES:
        if os.path.isfile(path):
            return path
    return None


def conf_load_time() -> str:
    return _sql("SELECT pg_conf_load_time()::text")[0][0]


def file_setting_errors() -> List[str]:
    rows = _sql("SELECT coalesce(sourcefile, '?'), coalesce(sourceline::text, '?'), coalesce(name, ''), error "
                "FROM pg_file_settings WHERE error IS NOT NULL")
    return ["{} line {}: {} ({})".format(f, ln, e, n) if n else "{} line {}: {}".format(f, ln, e)
            for f, ln, n, e in rows]


def winning_sources(names: List[str]) -> Dict[str, str]:
    """name -> file whose assignment wins, from pg_file_settings (the files on disk, last one wins)."""
    in_list = ", ".join(client.literal(n) for n in names)
    rows = _sql("SELECT name, sourcefile FROM pg_file_settings WHERE name IN ({}) ORDER BY seqno".format(in_list))
    winners = {}  # type: Dict[str, str]
    for name, source in rows:
        winners[name] = source
    return winners


def hba_errors(major: int) -> List[str]:
    if major < 10:
        return []
    rows = _sql("SELECT coalesce(line_number::text, '?'), coalesce(error, 'invalid rule'), coalesce(type, ''), "
                "coalesce(auth_method, ''), current_setting('ssl') FROM pg_hba_file_rules "
                "WHERE error IS NOT NULL OR auth_method IS NULL")
    return ["pg_hba.conf line {}: {}".format(ln, e) for ln, e, kind, method, ssl in rows
            if not is_ssl_off_warning(kind, method, e, ssl)]


def is_ssl_off_warning(kind: str, auth_method: str, error: str, ssl_setting: str) -> bool:
    """True for the one pg_hba_file_rules "error" that does not stop pg_hba.conf from loading.

    A complete ``hostssl`` row read while this session's ``ssl`` is off carries "hostssl record
    cannot match because SSL is disabled": PostgreSQL >= 10 only logs that and loads the rule (hba.c).
    ``enable --stage all`` writes ``ssl = on`` and the hostssl rules before the one reload that turns
    TLS on, so the check runs while ssl is still off; whether TLS really came up is proven by the
    handshake afterwards. Matched on the row's shape plus "SSL" (the text may be translated).
    """
    return kind == "hostssl" and bool(auth_method) and ssl_setting == "off" and "SSL" in error


def reload() -> None:
    _sql("SELECT pg_reload_conf()")
