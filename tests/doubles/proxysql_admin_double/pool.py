"""The double's backend bookkeeping: status history of mysql_servers rows and the connection pool.

The double proxies nothing, so ``stats_mysql_connection_pool`` is made up from the runtime layer:
one row per runtime server, ConnUsed as ``main.double_busy_connections`` tells it (see schema.py),
following ProxySQL's status semantics: ONLINE servers keep their connections, OFFLINE_SOFT ones
lose them once their in-flight work is done, OFFLINE_HARD and SHUNNED ones at once.
``stats_double_status_history`` records every status change of the runtime and disk layers.
"""

import time

_LAYERS = (("runtime", "main.runtime_mysql_servers"), ("disk", "disk.mysql_servers"))


def servers_changed(db, seen):
    """Append status changes since the last call to the history; refresh the pool.

    ``seen`` maps (layer, hostgroup_id, hostname, port) to (status, since) and is updated here.
    """
    now = time.time()
    for layer, table in _LAYERS:
        present = {(layer, hg, host, port): status for hg, host, port, status in db.execute(
            f"SELECT hostgroup_id, hostname, port, UPPER(status) FROM {table} ORDER BY hostgroup_id, hostname, port")}
        gone = {key: "" for key in seen if key[0] == layer and key not in present}
        for key, status in list(present.items()) + list(gone.items()):
            if seen.get(key, (None,))[0] != status:
                db.execute("INSERT INTO stats.stats_double_status_history (at, layer, hostgroup_id, hostname, port,"
                           " status) VALUES (?, ?, ?, ?, ?, ?)", (now, *key, status))
                seen[key] = (status, now)
        for key in gone:
            del seen[key]
    rebuild_connection_pool(db, seen)


def conn_used(status, used, drain_ms, since, now):
    """ConnUsed of one runtime server row."""
    if status == "ONLINE":
        return used
    if status == "OFFLINE_SOFT" and (drain_ms < 0 or now - since < drain_ms / 1000.0):
        return used
    return 0


def rebuild_connection_pool(db, seen):
    """stats_mysql_connection_pool as it is now (called before every read of it)."""
    now = time.time()
    busy = {(host.lower(), port): (used, drain_ms) for host, port, used, drain_ms in db.execute(
        "SELECT srv_host, srv_port, conn_used, drain_ms FROM main.double_busy_connections")}
    rows = []
    for hg, host, port, status in db.execute(
            "SELECT hostgroup_id, hostname, port, UPPER(status) FROM main.runtime_mysql_servers"
            " ORDER BY hostgroup_id, hostname, port").fetchall():
        used, drain_ms = busy.get((host.lower(), port), (0, 0))
        since = seen.get(("runtime", hg, host, port), (status, now))[1]
        n = conn_used(status, used, drain_ms, since, now)
        rows.append((hg, host, port, status, n, n))
    db.execute("DELETE FROM stats.stats_mysql_connection_pool")
    db.executemany("INSERT INTO stats.stats_mysql_connection_pool VALUES (?, ?, ?, ?, ?, 0, 0, 0, ?, 0, 0, 0, 0, 0)",
                   rows)
