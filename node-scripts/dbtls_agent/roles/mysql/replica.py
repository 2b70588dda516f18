"""Replica side of the ``mysql`` role: the channel to the primary over TLS, verified, and undone.

The primary must offer TLS first (stage *offer* on it); the manifest runs replicas' *use* stage after
that. Host-name verification is switched on only when our own handshake to the primary's
``Master_Host`` passes it, so replication never stops because of a name the certificate lacks.
"""

import time
from typing import Any, Dict, List

from dbtls_agent.errors import AgentError
from dbtls_agent.roles.base import Context
from dbtls_agent.roles.mysql import flavor, probe

REPLICA_WAIT_S = 60.0


def _status(node: Any) -> List[flavor.ReplicaStatus]:
    query = flavor.replica_status_query(node.flavor, node.version)
    return flavor.parse_replica_status(node.client.query(query, column_names=True))


def _source_port(node: Any) -> int:
    rows = flavor.parse_status_rows(node.client.query(
        flavor.replica_status_query(node.flavor, node.version), column_names=True))
    for key in ("Master_Port", "Source_Port"):
        if rows and rows[0].get(key):
            return int(rows[0][key])
    return 3306


def _wait_tls(node: Any) -> List[str]:
    deadline = time.monotonic() + REPLICA_WAIT_S
    while True:
        channels = _status(node)
        problems = [p for c in channels for p in c.problems()]
        if not problems:
            return []
        if time.monotonic() >= deadline:
            return problems
        time.sleep(0.5)


def _running(channel: flavor.ReplicaStatus) -> bool:
    return channel.io_running == "Yes" or channel.sql_running == "Yes"


def _restore_statements(node: Any, before: Dict[str, str], restart: bool) -> List[str]:
    """Statements that put the channel's recorded TLS options back; [] when nothing is known to undo.

    Records from older agents hold only ``ssl_allowed``/``verify`` (no ``ca_file``): those switched
    a non-TLS channel to TLS, so only that case is undone, as before."""
    ssl = before.get("ssl_allowed") in ("Yes", "Ignored")  # MySQL: Ignored = MASTER_SSL=1, no TLS support
    if "ca_file" not in before:
        if ssl:
            return []
        return flavor.replica_ssl_statements(node.flavor, node.version, node.root_crt, enable=False,
                                                  restart_threads=restart)
    return flavor.replica_ssl_restore_statements(
        node.flavor, node.version, ssl, before.get("ca_file") or "", before.get("verify") == "Yes",
        restart_threads=restart)


def enable_replica(ctx: Any, node: Any, strict: bool = False) -> Dict[str, Any]:
    ctx = Context.of(ctx)
    channels = _status(node)
    if not channels:
        return {"replica": False}
    channel = channels[0]
    # MariaDB 11.x channels use TLS by default (verifying a self-signed source by a password-derived
    # fingerprint), so "TLS on" is not enough: the channel must trust our CA.
    if channel.uses_tls and channel.ssl_ca_file == node.root_crt:
        return {"replica": True, "changed": False, "source": channel.source_host}
    port = _source_port(node)
    verify = True
    try:
        probe.probe(channel.source_host, port, node.root_crt)
    except AgentError as exc:
        try:
            probe.probe(channel.source_host, port, node.root_crt, check_hostname=False)
            verify = False
        except AgentError:
            message = "the primary {}:{} does not serve TLS from our CA yet ({}); run 'enable --stage use' " \
                      "on this replica after the primary".format(channel.source_host, port, exc)
            if strict:
                raise AgentError(message) from None
            return {"replica": True, "changed": False, "source": channel.source_host, "skipped": message}
    # Recorded once, before the first change: disable puts exactly these options back.
    node.state.remember("replica_before", channel.ssl_settings())
    restart = _running(channel)
    node.client.execute(flavor.replica_ssl_statements(node.flavor, node.version, node.root_crt,
                                                           verify_server_cert=verify, restart_threads=restart))
    ctx.step("replica-channel")  # switched, not yet seen running: a re-run finds it done
    problems = _wait_tls(node) if restart else []
    if problems:
        node.client.execute(_restore_statements(node, node.state.get("replica_before"), restart=True))
        raise AgentError("replication over TLS did not start: {}; the channel was switched back".format(
            "; ".join(problems)))
    return {"replica": True, "changed": True, "source": channel.source_host, "verify_server_cert": verify}


def disable_replica(ctx: Any, node: Any) -> Dict[str, Any]:
    before = node.state.get("replica_before")
    if not before:
        return {"changed": False}
    channels = _status(node)
    if not channels:
        return {"changed": False}
    statements = _restore_statements(node, before, restart=_running(channels[0]))
    if statements:
        node.client.execute(statements)
    return {"changed": bool(statements), "restored": before}


def replica_status(node: Any) -> List[Dict[str, str]]:
    return [{"source": c.source_host, "ssl_allowed": c.ssl_allowed, "io_running": c.io_running,
             "sql_running": c.sql_running, "verify_server_cert": c.verify_server_cert}
            for c in _status(node)]
