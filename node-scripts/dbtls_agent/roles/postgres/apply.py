"""What enable and disable of the postgres role share: reload and wait, prove TLS with a handshake.

Both directions change files and then need the same two things from the running server: that it
loaded them (its configuration load time moves on a reload), and, when TLS is on, that a
``verify-full`` handshake sees our certificate. Pgpool-II's role proves its TLS the same way.
"""

import socket
from typing import Any, Callable, Dict, Optional

from dbtls_agent import fsio, nodeos
from dbtls_agent.certs import nodeinfo
from dbtls_agent.errors import AgentError
from dbtls_agent.roles import base
from dbtls_agent.roles.postgres import client, server, tlsprobe

ROLE = "postgres"
RELOAD_WAIT_S = 20.0
SSL_NOT_RELOADED = "SSL configuration was not reloaded"


def own_host() -> str:
    names = nodeinfo.host_names()
    for name in (names["fqdn"], names["hostname"], socket.gethostname()):
        try:
            socket.getaddrinfo(name, 5432)
            return name
        except OSError:
            continue
    return "127.0.0.1"


def verify_tls(ctx: base.Context, port: int = 5432, wait_s: float = RELOAD_WAIT_S,
               give_up: Optional[Callable[[], bool]] = None) -> Dict[str, Any]:
    """Handshake (verify-full against root.crt) until our certificate is served or time runs out.

    ``give_up`` ends the wait early once it says the server has already refused the new files.
    """
    expected = tlsprobe.pem_sha256(fsio.read_bytes(ctx.server_cert()) or b"")
    host = own_host()
    holder = {}  # type: Dict[str, Any]

    def attempt() -> bool:
        holder["r"] = tlsprobe.check_served(host, port, ctx.server_root(), expected)
        return holder["r"]["ok"] or bool(give_up and give_up())
    nodeos.poll(attempt, wait_s, 0.2)
    return holder["r"]


def serves_ours(ctx: base.Context) -> bool:
    """One handshake, no waiting: is the certificate in server/ the one the server presents?"""
    expected = tlsprobe.pem_sha256(fsio.read_bytes(ctx.server_cert()) or b"")
    return bool(tlsprobe.check_served(own_host(), 5432, ctx.server_root(), expected)["ok"])


def reload_and_wait(ctx: base.Context, info: Dict[str, Any]) -> str:
    """Reload (or restart in --upstream-mode) and wait until new sessions see the new load time."""
    if ctx.opt("upstream_mode"):
        nodeos.service("restart")
        nodeos.poll(lambda: client.find_socket_dir() is not None, 120)
        return "restart"
    before = server.conf_load_time()
    server.reload()
    if not nodeos.poll(lambda: server.conf_load_time() != before, RELOAD_WAIT_S, 0.05):
        raise AgentError("PostgreSQL did not reload its configuration within {:.0f}s".format(RELOAD_WAIT_S))
    return "reload"


def log_error(info: Dict[str, Any], offset: int) -> str:
    text = nodeos.log_tail(info.get("log_file"), offset)
    lines = [ln.strip() for ln in text.splitlines() if ln.strip()]
    picked = [ln for ln in lines if "was not reloaded" in ln or "could not " in ln or "FATAL" in ln
              or "private key file" in ln or "certificate" in ln.lower()]
    return " | ".join(picked[-3:])


def wait_standbys_replayed(ctx: base.Context, timeout: float = 30.0) -> None:
    """Wait until every standby has replayed the new SCRAM secrets.

    Each standby's own require stage switches its rules to scram-sha-256 next; if it still held the
    md5 secrets then, logins routed to it (Pgpool load-balances reads) would fail until replay.
    """
    lsn = client.psql("SELECT pg_current_wal_lsn()", os_user=server.SERVICE_USER)[0][0]
    behind_sql = ("SELECT count(*) FROM pg_stat_replication WHERE replay_lsn IS NULL "
                  "OR replay_lsn < {}::pg_lsn".format(client.literal(lsn)))

    def caught_up() -> bool:
        return client.psql(behind_sql, os_user=server.SERVICE_USER)[0][0] == "0"
    if not nodeos.poll(caught_up, timeout, 0.1):
        ctx.say("standbys had not replayed the SCRAM re-hash within {:.0f}s; run their require stage "
                "once they have".format(timeout))
