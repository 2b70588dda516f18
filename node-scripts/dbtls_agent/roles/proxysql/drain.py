"""``proxysql-backend``: take one MySQL backend out of ProxySQL's rotation around its restart, and back.

MariaDB's first TLS enable (and its disable) restarts the server. Run on every ProxySQL node, before
the restart ``--state offline-soft`` sets the backend's mysql_servers rows ``OFFLINE_SOFT`` and loads
them, then waits (with a deadline) until ``stats_mysql_connection_pool`` shows no connection in use:
clients finish their work and are moved to the other servers instead of seeing a dead connection.
After the restart ``--state online`` puts back exactly the rows this command took offline.

The rows taken are recorded in ``<cert-dir>/.dbtls-state/proxysql-drain.role.json`` *before* ProxySQL
is touched, so nothing can stay OFFLINE_SOFT unnoticed: a later ``offline-soft`` for another backend,
``online --all`` and the proxysql role's enable/disable put back whatever an earlier run left
(one backend drains at a time). Nothing is ever SAVEd: a drain is transient, and a row someone SAVEd
while it was OFFLINE_SOFT gets ONLINE back in ``disk.mysql_servers`` alone.

(``restart-expected``, run on the database node first, says whether a drain is needed at all:
roles/mysql/forecast.py.)
"""

import socket
import time
from typing import Any, Callable, Dict, List, Optional, Sequence, Tuple

from dbtls_agent import state
from dbtls_agent.errors import AgentError
from dbtls_agent.roles.base import Context
from dbtls_agent.roles.proxysql import plan
from dbtls_agent.roles.proxysql.admin import Admin

RECORD = "proxysql-drain"
DEFAULT_DRAIN_TIMEOUT_S = 60.0
POLL_S = 0.5

Row = Tuple[int, str, int, str]


def split_addresses(values: Sequence[str]) -> List[str]:
    """``--address`` values, each possibly a comma/space separated list, in order, without repeats."""
    out = []  # type: List[str]
    for value in values:
        for name in value.replace(",", " ").split():
            if name not in out:
                out.append(name)
    return out


def resolve_ips(name: str) -> List[str]:
    """Addresses ``name`` resolves to on this node (empty when it does not resolve)."""
    try:
        infos = socket.getaddrinfo(name, None, 0, socket.SOCK_STREAM)
    except (OSError, UnicodeError):
        return []
    return sorted({str(info[4][0]) for info in infos})


def candidate_names(names: Sequence[str], resolve: Callable[[str], List[str]] = resolve_ips) -> List[str]:
    """The given names plus every IP they resolve to here: a backend listed by IP is found from its name."""
    out = list(names)
    for name in names:
        for ip in resolve(name):
            if ip not in out:
                out.append(ip)
    return out


def wait_drained(read_pool: Callable[[], str], backends: Sequence[Tuple[str, int]], timeout_s: float,
                 clock: Callable[[], float] = time.monotonic, sleep: Callable[[float], None] = time.sleep,
                 interval_s: float = POLL_S) -> Tuple[bool, int, float]:
    """Poll the connection pool until ``backends`` have no connection in use or ``timeout_s`` passed.
    Returns (drained, connections still in use, seconds waited)."""
    start = clock()
    while True:
        used = plan.conn_used(plan.parse_pool(read_pool()), backends)
        waited = clock() - start
        if used == 0:
            return True, 0, waited
        if waited >= timeout_s:
            return False, used, waited
        sleep(min(interval_s, max(0.0, timeout_s - waited)))


class Record(object):
    """Rows this command set OFFLINE_SOFT and has not put back yet."""

    def __init__(self, cert_dir: str) -> None:
        self.state = state.RoleState(cert_dir, RECORD)

    @property
    def entries(self) -> List[Dict[str, Any]]:
        return list(self.state.get("taken", []))

    def add(self, rows: Sequence[Row], names: Sequence[str]) -> None:
        known = {_key(e) for e in self.entries}
        fresh = [{"hostgroup_id": hg, "hostname": host, "port": port, "names": list(names), "since": int(time.time())}
                 for hg, host, port, _status in rows if (hg, host, port) not in known]
        if fresh:
            self.state.set("taken", self.entries + fresh)

    def drop(self, keys: Sequence[plan.ServerKey]) -> None:
        left = [e for e in self.entries if _key(e) not in set(keys)]
        if left:
            self.state.set("taken", left)
        else:
            self.state.remove()


def _key(entry: Dict[str, Any]) -> plan.ServerKey:
    return int(entry["hostgroup_id"]), str(entry["hostname"]), int(entry["port"])


def _describe(keys: Sequence[plan.ServerKey]) -> str:
    return ", ".join("{}:{} (hostgroup {})".format(host, port, hg) for hg, host, port in keys)


def restore(admin: Any, record: Record, entries: Sequence[Dict[str, Any]]) -> List[Dict[str, Any]]:
    """ONLINE + LOAD for the recorded ``entries`` still OFFLINE_SOFT; check runtime; fix disk if someone
    SAVEd meanwhile; forget them. Returns each row with its status afterwards."""
    keys = [_key(e) for e in entries]
    if not keys:
        return []
    admin.client.execute(plan.set_status_statements(keys, plan.ONLINE, plan.OFFLINE_SOFT))
    runtime = {r[:3]: r[3] for r in plan.parse_server_status(
        admin.client.query(plan.server_status_query("runtime_")))}
    stuck = [k for k in keys if runtime.get(k) == plan.OFFLINE_SOFT]
    if stuck:
        raise AgentError("ProxySQL still runs {} as OFFLINE_SOFT after LOAD MYSQL SERVERS TO RUNTIME".format(
            _describe(stuck)))
    code, out, _err = admin.client.try_query(plan.server_status_query("disk."))
    if code == 0:
        saved = [r[:3] for r in plan.parse_server_status(out)
                 if r[:3] in set(keys) and r[3] == plan.OFFLINE_SOFT]
        if saved:
            try:
                admin.client.execute(plan.disk_online_statements(saved))
            except AgentError as exc:
                raise AgentError("{} were SAVEd to disk while OFFLINE_SOFT and stay so there: {}; they are ONLINE "
                                 "in runtime, check mysql_servers and SAVE MYSQL SERVERS TO DISK".format(
                                     _describe(saved), exc)) from None
    record.drop(keys)
    return [{"hostgroup_id": hg, "hostname": host, "port": port, "runtime_status": runtime.get((hg, host, port))}
            for hg, host, port in keys]


def restore_leftovers(admin: Any, cert_dir: str, keep: Callable[[Dict[str, Any]], bool] = lambda e: False
                      ) -> List[str]:
    """Put back ONLINE what an earlier run left OFFLINE_SOFT (except entries ``keep`` names); messages."""
    record = Record(cert_dir)
    stale = [e for e in record.entries if not keep(e)]
    if not stale:
        return []
    restore(admin, record, stale)
    return ["put back ONLINE (left OFFLINE_SOFT by an earlier run that did not finish): {}".format(
        _describe([_key(e) for e in stale]))]


def _open_admin(ctx: Any) -> Any:
    return Admin(ctx)


def take_offline(ctx: Any, names: Sequence[str], port: Optional[int], timeout_s: float,
                 resolve: Callable[[str], List[str]] = resolve_ips) -> Dict[str, Any]:
    """OFFLINE_SOFT + LOAD for the backend's ONLINE rows (recorded first), then wait for the drain."""
    ctx = Context.of(ctx)
    cert_dir = ctx.cert_dir
    candidates = candidate_names(names, resolve)
    admin = _open_admin(ctx)

    def ours(entry: Dict[str, Any]) -> bool:
        return bool(plan.match_servers([_key(entry) + ("",)], candidates, port))

    result = {"state": "offline-soft", "addresses": list(names), "rows": [], "changed": False,
              "drained": True, "conn_used": 0, "drain_seconds": 0.0,
              "messages": restore_leftovers(admin, cert_dir, keep=ours)}  # type: Dict[str, Any]
    rows = plan.parse_server_status(admin.client.query(plan.server_status_query()))
    matched = plan.match_servers(rows, candidates, port)
    if not matched:
        result["messages"].append("no mysql_servers row for {}: nothing to do".format(" ".join(names)))
        return result
    take = [r for r in matched if r[3] == plan.ONLINE]
    record = Record(cert_dir)
    record.add(take, names)
    keys = [r[:3] for r in take]
    if keys:
        try:
            admin.client.execute(plan.set_status_statements(
                keys, plan.OFFLINE_SOFT, plan.ONLINE))
        except AgentError:
            admin.client.try_query(";\n".join(plan.set_status_statements(
                keys, plan.ONLINE, plan.OFFLINE_SOFT)))
            record.drop(keys)
            raise
    result["changed"] = bool(keys)
    result["rows"] = [{"hostgroup_id": hg, "hostname": host, "port": p, "before": status,
                       "taken_offline": (hg, host, p) in set(keys)} for hg, host, p, status in matched]
    drained, used, waited = wait_drained(lambda: admin.client.query(plan.pool_query()),
                                         sorted({(host, p) for _hg, host, p, _s in matched}), timeout_s)
    result.update({"drained": drained, "conn_used": used, "drain_seconds": round(waited, 2)})
    if not drained:
        result["warnings"] = ["{} connection(s) to {} still in use after {:.0f}s; the restart goes ahead".format(
            used, " ".join(names), waited)]
    return result


def put_online(ctx: Any, names: Sequence[str], port: Optional[int], every: bool,
               resolve: Callable[[str], List[str]] = resolve_ips) -> Dict[str, Any]:
    """ONLINE + LOAD for the rows an earlier ``offline-soft`` recorded for this backend (or all)."""
    ctx = Context.of(ctx)
    record = Record(ctx.cert_dir)
    candidates = candidate_names(names, resolve) if names else []
    entries = [e for e in record.entries
               if every or plan.match_servers([_key(e) + ("",)], candidates, port)]
    result = {"state": "online", "addresses": list(names), "rows": [], "changed": False,
              "messages": []}  # type: Dict[str, Any]
    if not entries:
        result["messages"].append("nothing recorded as taken offline for {}: nothing to do".format(
            " ".join(names) if names and not every else "any backend"))
        return result
    result["rows"] = restore(_open_admin(ctx), record, entries)
    result["changed"] = True
    return result
