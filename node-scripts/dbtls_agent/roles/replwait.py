"""``replication wait``: return only once every standby/replica streams again, with a deadline.

Restarts and reconfigurations interrupt replication: a PostgreSQL standby's WAL receiver
reconnects when its ``primary_conninfo`` changes, and a MariaDB/MySQL replica whose primary
restarts sits in ``Slave_IO_Running: Connecting`` until its retry timer (``Connect_Retry``, 60 s by
default) fires. Install, re-issue and uninstall must not say "done" before replication is back.

* PostgreSQL primary: every standby that was seen streaming before (recorded in the state directory
  by enable, disable, preflight and earlier waits) and every standby connected now must have a row
  in ``pg_stat_replication`` with ``state = streaming``.
* PostgreSQL standby: ``pg_stat_wal_receiver.status = streaming``.
* MySQL-family replica: every channel has ``Slave_IO_Running`` and ``Slave_SQL_Running`` = Yes. A
  channel whose IO thread is ``Connecting`` is kicked (``STOP SLAVE IO_THREAD; START SLAVE
  IO_THREAD``, or the REPLICA spelling, per channel) at most every few seconds, so it reconnects now
  instead of after its retry timer. A thread that is stopped (``No``) is never started: that is
  someone's decision or a fatal error, and is reported.
* MySQL-family primary: every replica recorded before the last restart (``Binlog Dump`` threads'
  addresses) and every one connected now has its ``Binlog Dump`` thread again.

The decisions are pure functions (unit-tested); polling is at most every half second.
"""

import json
import os
import time
from typing import Any, Callable, Dict, List, Optional, Sequence

from dbtls_agent import fsio, state
from dbtls_agent.errors import AgentError
from dbtls_agent.roles.mysql import flavor as mysqlflavor

POLL_S = 0.5
KICK_EVERY_S = 3.0
STOPPED_GRACE_S = 10.0


# --- what was seen before ------------------------------------------------------------------------

def _seen_path(cert_dir: str) -> str:
    return state.layout(cert_dir).replication_seen


def load_seen(cert_dir: str) -> Dict[str, Any]:
    try:
        data = json.loads(fsio.read_text(_seen_path(cert_dir)) or "{}")
    except ValueError:
        data = {}
    return data if isinstance(data, dict) else {}


def save_seen(cert_dir: str, family: str, names: Sequence[str]) -> None:
    """Record the standbys/replicas seen streaming now (replaces the family's earlier record)."""
    if not os.path.isdir(cert_dir):
        return  # no add-on state on this node: nothing to remember against
    data = load_seen(cert_dir)
    data[family] = sorted(set(names))
    path = _seen_path(cert_dir)
    fsio.ensure_dir(os.path.dirname(path), 0o700)
    fsio.atomic_write(path, json.dumps(data, sort_keys=True).encode(), 0o600)


def remember(cert_dir: str, family: str, names: Sequence[str]) -> None:
    """Add ``names`` to the record (used right before something that interrupts replication)."""
    if names:
        save_seen(cert_dir, family, list(load_seen(cert_dir).get(family, [])) + list(names))


def remember_pg_now(cert_dir: str) -> None:
    """Record the standbys streaming from this PostgreSQL primary now (no-op on a standby)."""
    from dbtls_agent.roles.postgres import client, server
    try:
        rows = client.psql("SELECT coalesce(application_name, ''), coalesce(host(client_addr), '') "
                             "FROM pg_stat_replication WHERE state = 'streaming'", os_user=server.SERVICE_USER)
    except AgentError:
        return
    remember(cert_dir, "postgres", [pg_standby_name(a, c) for a, c in rows])


def remember_mysql_now(node: Any, cert_dir: str) -> None:
    """Record the replicas streaming from this MySQL-family server now (before a restart)."""
    try:
        remember(cert_dir, "mysql", mysql_replicas_connected(node))
    except AgentError:
        pass


def pg_standby_name(application_name: str, address: str) -> str:
    """How a standby is recognised again after it reconnects: its application_name and address."""
    return "{}@{}".format(application_name or "?", address or "?")


# --- pure decisions -------------------------------------------------------------------------------

def missing_pg(expected: Sequence[str], rows: Sequence[Dict[str, str]]) -> List[str]:
    """Expected standbys without a streaming row (rows: application_name, address, state)."""
    streaming = {pg_standby_name(r.get("application_name", ""), r.get("address", "")) for r in rows
                 if r.get("state") == "streaming"}
    return sorted(n for n in expected if n not in streaming)


def missing_replicas(expected: Sequence[str], connected: Sequence[str]) -> List[str]:
    return sorted(set(expected) - set(connected))


def channel_ok(channel: Dict[str, str]) -> bool:
    return channel.get("io_running") == "Yes" and channel.get("sql_running") == "Yes"


def should_kick(channel: Dict[str, str], last_kick: Optional[float], now: float, every: float = KICK_EVERY_S) -> bool:
    """Kick an IO thread that waits to reconnect (``Connecting``), at most every ``every`` seconds."""
    return channel.get("io_running") == "Connecting" and (last_kick is None or now - last_kick >= every)


def kick_statements(flavor: str, version: Sequence[int], channel: str) -> List[str]:
    """STOP/START of one channel's IO thread, in the server's own spelling."""
    noun = "REPLICA" if version >= ((10, 5, 1) if flavor == mysqlflavor.MARIADB else (8, 0, 22)) else "SLAVE"
    if flavor == mysqlflavor.MARIADB:
        name = " " + _quote(channel) if channel else ""
        return ["STOP {}{} IO_THREAD".format(noun, name), "START {}{} IO_THREAD".format(noun, name)]
    suffix = " FOR CHANNEL " + _quote(channel) if channel else ""
    return ["STOP {} IO_THREAD{}".format(noun, suffix), "START {} IO_THREAD{}".format(noun, suffix)]


def _quote(name: str) -> str:
    return "'" + name.replace("\\", "\\\\").replace("'", "''") + "'"


def stopped_for_good(channel: Dict[str, str]) -> bool:
    """An IO or SQL thread that is ``No``: stopped by someone or by a fatal error; never restarted here."""
    return channel.get("io_running") == "No" or channel.get("sql_running") == "No"


# --- waiting ---------------------------------------------------------------------------------------

class Waiter(object):
    """Polls ``check`` until it reports nothing missing or the deadline passes."""

    def __init__(self, timeout: float, clock: Callable[[], float] = time.monotonic,
                 sleep: Callable[[float], None] = time.sleep) -> None:
        self.timeout = timeout
        self.clock = clock
        self.sleep = sleep
        self.start = clock()

    def elapsed(self) -> float:
        return round(self.clock() - self.start, 2)

    def expired(self) -> bool:
        return self.clock() - self.start >= self.timeout

    def pause(self) -> None:
        self.sleep(POLL_S)


def wait_pg(cert_dir: str, timeout: float, forget: bool = False) -> Dict[str, Any]:
    from dbtls_agent.roles.postgres import client, server
    info = server.facts(require_running=True) or {}
    waiter = Waiter(timeout)

    def q(sql: str) -> List[List[str]]:
        return client.psql(sql, os_user=server.SERVICE_USER)
    if info.get("in_recovery"):
        while True:
            rows = q("SELECT coalesce(status, ''), coalesce(conninfo, '') FROM pg_stat_wal_receiver")
            status = rows[0][0] if rows else "not running"
            if status == "streaming" or waiter.expired():
                ok = status == "streaming"
                return {"role": "postgres", "side": "standby", "ok": ok, "seconds": waiter.elapsed(),
                        "replicas": [{"name": "wal receiver", "state": status, "ok": ok}]}
            waiter.pause()
    expected = [] if forget else list(load_seen(cert_dir).get("postgres", []))
    while True:
        rows = [{"application_name": a, "address": c, "state": s} for a, c, s in q(
            "SELECT coalesce(application_name, ''), coalesce(host(client_addr), ''), coalesce(state, '') "
            "FROM pg_stat_replication")]
        names = sorted(set(expected) | {pg_standby_name(r["application_name"], r["address"]) for r in rows})
        missing = missing_pg(names, rows)
        if not missing or waiter.expired():
            replicas = []
            for name in names:
                row = next((r for r in rows if pg_standby_name(r["application_name"], r["address"]) == name), None)
                replicas.append({"name": name, "state": row["state"] if row else "absent", "ok": name not in missing})
            if not missing:
                save_seen(cert_dir, "postgres", names)
            return {"role": "postgres", "side": "primary", "ok": not missing, "seconds": waiter.elapsed(),
                    "replicas": replicas}
        waiter.pause()


def mysql_channels(node: Any) -> List[Dict[str, str]]:
    from dbtls_agent.roles.mysql import preflight
    found = mysqlflavor.parse_replica_status(node.client.query(
        preflight.channels_query(node.flavor, node.version), column_names=True))
    return [{"channel": c.channel, "source": c.source_host, "io_running": c.io_running,
             "sql_running": c.sql_running, "last_io_error": c.last_io_error} for c in found]


def mysql_replicas_connected(node: Any) -> List[str]:
    """Addresses of the replicas streaming from this server (its Binlog Dump threads)."""
    from dbtls_agent.roles.mysql import preflight
    rows = node.client.rows("SELECT HOST FROM information_schema.PROCESSLIST WHERE COMMAND LIKE 'Binlog Dump%'")
    return sorted({preflight.split_host(r[0] or "") for r in rows if r[0]})


def wait_mysql(node: Any, cert_dir: str, timeout: float, forget: bool = False,
               waiter: Optional[Waiter] = None) -> Dict[str, Any]:
    waiter = waiter or Waiter(timeout)
    channels = mysql_channels(node)
    if channels:
        kicks = {}  # type: Dict[str, List[float]]
        stopped_since = {}  # type: Dict[str, float]
        while True:
            now = waiter.clock()
            pending = [c for c in channels if not channel_ok(c)]
            for channel in pending:
                times = kicks.setdefault(channel["channel"], [])
                if should_kick(channel, times[-1] if times else None, now):
                    node.client.execute(kick_statements(node.flavor, node.version, channel["channel"]))
                    times.append(now)
                if stopped_for_good(channel):
                    stopped_since.setdefault(channel["channel"], now)
                else:
                    stopped_since.pop(channel["channel"], None)
            stuck = [n for n, t in stopped_since.items() if now - t >= STOPPED_GRACE_S]
            if not pending or stuck or waiter.expired():
                replicas = [dict(c, ok=channel_ok(c), kicks=len(kicks.get(c["channel"], []))) for c in channels]
                return {"role": "mysql", "side": "replica", "ok": not pending, "seconds": waiter.elapsed(),
                        "replicas": replicas, "stopped": sorted(stuck)}
            waiter.pause()
            channels = mysql_channels(node)
    expected = [] if forget else list(load_seen(cert_dir).get("mysql", []))
    while True:
        connected = mysql_replicas_connected(node)
        names = sorted(set(expected) | set(connected))
        missing = missing_replicas(names, connected)
        if not missing or waiter.expired():
            if not missing:
                save_seen(cert_dir, "mysql", names)
            return {"role": "mysql", "side": "primary" if names else "none", "ok": not missing,
                    "seconds": waiter.elapsed(),
                    "replicas": [{"name": n, "state": "connected" if n not in missing else "absent",
                                  "ok": n not in missing} for n in names]}
        waiter.pause()


def failure_line(result: Dict[str, Any], timeout: float) -> str:
    """The one line for stderr when replication is not back."""
    bad = [r for r in result.get("replicas", []) if not r.get("ok")]
    parts = []
    for r in bad[:3]:
        if "io_running" in r:
            parts.append("{} from {}: IO {}, SQL {}{}".format(
                "channel '{}'".format(r["channel"]) if r.get("channel") else "replication", r.get("source"),
                r.get("io_running"), r.get("sql_running"),
                " ({})".format(r["last_io_error"]) if r.get("last_io_error") else ""))
        else:
            parts.append("{}: {}".format(r["name"], r["state"]))
    if result.get("stopped"):
        return "replication is stopped and was not started by dbtls: " + "; ".join(parts)
    return "replication is not back after {:.0f}s: {}".format(timeout, "; ".join(parts) or "unknown state")
