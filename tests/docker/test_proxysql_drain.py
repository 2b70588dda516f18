"""MariaDB restarts behind ProxySQL, installed and uninstalled through manifest.jps on a mariadb-cluster.

Every restart of a MariaDB node (its first enable, and the disables of an uninstall) must happen
while ProxySQL has it OFFLINE_SOFT and its connections drained, one node at a time, replicas before
the primary, with the node ONLINE again afterwards and nothing OFFLINE_SOFT ever saved to disk. The
proof comes from two independent clocks' worth of evidence: the ProxySQL admin double's status history
(``stats_double_status_history``, epoch seconds) and each mariadbd's process start time (from /proc,
cross-checked with the server's own UPTIME). The double pretends each backend has connections in use
that finish 1.5 s after it turns OFFLINE_SOFT (``double_busy_connections``), so a restart that did not
wait for the drain shows up too. Helpers come from test_manifest_mysql.py; the environment is this
module's own (``dr-mariadb-cluster-<release>``).
"""

from __future__ import annotations

import json
import time
from collections.abc import Iterator

import pytest
import test_manifest_mysql as m
from harness import RELEASES, Sim, sim_env

from dbtls.addon.project import build_outputs, repo_root, write_outputs

DRAIN_MS = 1500
BUSY = 2
EPS = 0.05  # process start time from /proc: clock ticks plus /proc/uptime's 10 ms
START_TIME_PY = ("import os, time; pid = open('/run/mysqld/mysqld.pid').read().strip(); "
                 "f = open('/proc/%s/stat' % pid).read().rsplit(')', 1)[1].split(); "
                 "up = float(open('/proc/uptime').read().split()[0]); "
                 "print(time.time() - up + int(f[19]) / os.sysconf('SC_CLK_TCK'))")
TIMINGS: dict[str, list] = {}


@pytest.fixture(scope="module", params=RELEASES)
def sim(request, engine) -> Iterator[Sim]:
    write_outputs(repo_root(), build_outputs(repo_root()))  # the manifest must pin the current agent
    for env in sim_env("mariadb-cluster", request.param, "dr"):
        yield Sim(env)


def started_at(env, node) -> float:
    """When this node's running mariadbd started (epoch seconds)."""
    code, out = env.exec(node.name, ["python3", "-c", START_TIME_PY])
    assert code == 0, out
    uptime_based = float(m.sql(env, node, "SELECT UNIX_TIMESTAMP(NOW(6)) - VARIABLE_VALUE FROM "
                                          "information_schema.GLOBAL_STATUS WHERE VARIABLE_NAME='UPTIME'"))
    assert abs(float(out) - uptime_based) < 2.0, (out, uptime_based)
    return float(out)


def history(env) -> list[tuple[float, str, str, str]]:
    """(at, layer, hostname, status) of every status change the double recorded."""
    rows = m.admin(env, "SELECT at, layer, hostname, status FROM stats_double_status_history ORDER BY seq")
    return [(float(a), layer, host, status) for a, layer, host, status in
            (line.split("\t") for line in rows.splitlines())]


def windows(rows, host: str, since: float) -> list[tuple[float, float]]:
    """(OFFLINE_SOFT at, ONLINE at) pairs of ``host`` in the runtime layer after ``since``."""
    out, start = [], None
    for at, layer, h, status in rows:
        if layer != "runtime" or h != host or at < since:
            continue
        if status == "OFFLINE_SOFT":
            assert start is None, f"{host} went OFFLINE_SOFT twice without ONLINE in between"
            start = at
        else:
            assert status == "ONLINE" and start is not None, (host, status, at)
            out.append((start, at))
            start = None
    assert start is None, f"{host} was left OFFLINE_SOFT"
    return out


def backend(node) -> str:
    return f"node{node.node_id}"  # how the platform lists a node in mysql_servers


def ordered(env):
    """The MariaDB nodes in drain order: replicas, then the primary."""
    return sorted(m.mariadb_nodes(env), key=lambda n: (n.is_master, n.node_id))


def all_online(env) -> None:
    for table in ("mysql_servers", "runtime_mysql_servers", "disk.mysql_servers"):
        assert set(m.admin(env, f"SELECT status FROM {table}").split()) == {"ONLINE"}, table
    assert set(m.admin(env, "SELECT ConnUsed FROM stats_mysql_connection_pool").split()) == {str(BUSY)}


def drains(results) -> list[dict]:
    """The JSON of every ``proxysql-backend --state offline-soft`` the manifest ran."""
    return [json.loads(step.out) for _group, result in results for step in result.cmd_steps()
            if "--state offline-soft" in step.detail and step.out.strip().startswith("{")]


@pytest.fixture(scope="module")
def installed(sim):
    env = sim.env
    values = ", ".join(f"('{backend(n)}', 3306, {BUSY}, {DRAIN_MS})" for n in m.mariadb_nodes(env))
    m.admin(env, "INSERT INTO double_busy_connections (srv_host, srv_port, conn_used, drain_ms) VALUES " + values)
    before = {n.name: started_at(env, n) for n in m.mariadb_nodes(env)}
    t0 = time.time()
    results = sim.session(lambda s: s.install(dict(m.SETTINGS)))
    for group, result in results:
        assert result.ok and not result.stopped, (group, result.error)
    assert [g for g, _ in results] == ["sqldb", "proxy"]
    TIMINGS["install"] = [(d["addresses"][0], d["drain_seconds"], d["drained"]) for d in drains(results)]
    return {"t0": t0, "before": before, "results": results}


def test_first_enable_restarts_each_node_inside_its_drain_replicas_first(sim, installed):
    env, t0 = sim.env, installed["t0"]
    rows = history(env)
    previous_end = t0
    TIMINGS["install-windows"] = []
    for node in ordered(env):
        start = started_at(env, node)
        assert start > installed["before"][node.name], f"{node.name}: the first enable did not restart mariadbd"
        (offline, online), = windows(rows, backend(node), t0)
        # Restarted after ProxySQL let its connections finish, and ONLINE only once it was back.
        assert offline + DRAIN_MS / 1000.0 - EPS <= start < online, (node.name, offline, start, online)
        assert previous_end < offline, f"{node.name} was drained while the previous node was still out"
        previous_end = online
        TIMINGS["install-windows"].append((backend(node), round(start - offline, 2), round(online - offline, 2)))
    timings = {a: (s, ok) for a, s, ok in TIMINGS["install"]}
    for node in ordered(env):
        seconds, ok = timings[backend(node)]
        assert ok and seconds >= DRAIN_MS / 1000.0 - EPS, (node.name, seconds)
    assert len(TIMINGS["install"]) == len(ordered(env))  # the proxy layer's install restarted nothing


def test_nothing_offline_is_ever_saved_and_all_is_online(sim, installed):
    env = sim.env
    assert not [r for r in history(env) if r[1] == "disk" and r[3] != "ONLINE"]
    all_online(env)
    code, out = env.exec("proxysql", ["ls", "-A", m.CERT_DIR + "/.dbtls-state"])
    assert code == 0 and "proxysql-drain.role.json" not in out, out


def test_uninstall_drains_every_restart_too(sim, installed):
    env = sim.env
    t1 = time.time()
    results = sim.session(lambda s: s.uninstall())
    assert [g for g, _ in results] == ["proxy", "sqldb"]
    assert all(r.ok for _, r in results), [r.error for _, r in results]
    TIMINGS["uninstall"] = [(d["addresses"][0], d["drain_seconds"], d["drained"]) for d in drains(results)]
    rows = history(env)
    nodes = ordered(env)
    spans = sorted((w, backend(n)) for n in nodes for w in windows(rows, backend(n), t1))
    # Proxy layer: disable (restart) and offer again (restart); database layer: disable (restart).
    assert [host for _w, host in spans] == [backend(n) for n in nodes] * 3, spans
    for (_a, end), ((start, _b), _host) in zip([w for w, _ in spans], spans[1:], strict=False):
        assert end < start, spans
    for node in nodes:
        last = [w for w, host in spans if host == backend(node)][-1]
        assert last[0] + DRAIN_MS / 1000.0 - EPS <= started_at(env, node) < last[1], (node.name, last)
    assert all(ok for _a, _s, ok in TIMINGS["uninstall"]), TIMINGS["uninstall"]
    assert not [r for r in history(env) if r[1] == "disk" and r[3] != "ONLINE"]
    all_online(env)
    code, out = env.exec("proxysql", ["bash", "-c", f"ls -A {m.CERT_DIR} 2>&1; ls /usr/local/sbin/dbtls-agent 2>&1"])
    assert out.count("No such file") == 2, out
    print("\ndrain timings: install/uninstall (backend, drain s, drained); install-windows (backend, "
          "OFFLINE_SOFT->mariadbd start s, OFFLINE_SOFT->ONLINE s):", json.dumps(TIMINGS))
