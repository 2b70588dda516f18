"""Facts about the local Pgpool-II: is it here, which version, which files, which backends.

Kept apart from the role module because pre-flight, ``pool-passwd allow`` and the report need them
without the role's enable and disable.
"""

import os
import re
import subprocess
from typing import Any, Dict, List, Optional, Tuple

from dbtls_agent import fsio
from dbtls_agent.errors import AgentError
from dbtls_agent.roles.pgpool import poolkey
from dbtls_agent.roles.postgres import conf as pgconf
from dbtls_agent.roles.postgres import server

CONF_DIR = "/etc/pgpool-II"


def pgpool_version() -> Optional[str]:
    try:
        proc = subprocess.run(["pgpool", "--version"], stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                              stdin=subprocess.DEVNULL, timeout=30)
    except (OSError, subprocess.TimeoutExpired):
        return None
    out = proc.stdout.decode("utf-8", "replace")  # pgpool prints its version on stderr
    match = re.search(r"version\s+(\d+(?:\.\d+)*)", out)
    return match.group(1) if match else None


def start_only(version: Optional[str]) -> List[str]:
    """Settings that only take effect at start on this version."""
    parts = [int(p) for p in (version or "4.0").split(".")[:2] if p.isdigit()] + [0]
    if (parts[0], parts[1]) <= (4, 7):
        return ["ssl", "ssl_key", "ssl_cert", "ssl_ca_cert", "ssl_ciphers", "ssl_prefer_server_ciphers", "pool_passwd"]
    return ["ssl", "pool_passwd"]  # releases with commit 931a37e7f reload certificates and ciphers


def detect() -> Optional[Dict[str, Any]]:
    conf = os.path.join(CONF_DIR, "pgpool.conf")
    running = bool(server.processes("pgpool"))
    if not (os.path.isfile(conf) or running or server.compute_type() == "pgpool2"):
        return None
    version = pgpool_version()
    text = fsio.read_text(conf) or ""
    try:
        passwd = poolkey.pool_passwd_path(conf, text) if text else None
    except AgentError:
        passwd = None  # a pool_passwd the agent refuses to write: enable says why
    return {"role": "pgpool", "running": running, "version": version, "major": server.major_of(version),
            "minor": int(version.split(".")[1]) if version and version.count(".") else None,
            "service_user": poolkey.SERVICE_USER, "config_file": conf,
            "hba_file": os.path.join(CONF_DIR, "pool_hba.conf"),
            "pool_passwd": passwd,
            "key_file": poolkey.key_path(), "port": int(pgconf.get(text, "port") or 9999) if text else None,
            "start_only_tls": "ssl_cert" in start_only(version), "paths_from": "default"}


def backends(conf_text: str) -> List[Tuple[str, int]]:
    """(host, port) of every backend_hostnameN in pgpool.conf, by N."""
    found = {}  # type: Dict[int, Tuple[str, int]]
    for name in sorted({e.key for e in pgconf.settings(conf_text, "pgpool.conf")}):
        match = re.match(r"backend_hostname(\d+)$", name)
        host = pgconf.get(conf_text, name) if match else None
        if match and host:
            port = pgconf.get(conf_text, "backend_port" + match.group(1)) or "5432"
            found[int(match.group(1))] = (host, int(port) if port.isdigit() else 5432)
    return [found[k] for k in sorted(found)]
