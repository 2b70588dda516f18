"""What the ProxySQL admin double knows about draining a backend: status semantics in
stats_mysql_connection_pool, the test control table double_busy_connections, and the status history."""

import time

import pytest
from test_proxysql_admin_double import start_double  # noqa: F401  (fixture)

SEED_SERVERS = ("INSERT INTO mysql_servers (hostgroup_id, hostname, port) VALUES "
                "(10, 'node1', 3306), (11, 'node2', 3306), (11, 'node1', 3306)")


@pytest.fixture
def double(start_double):  # noqa: F811
    d = start_double("--no-tls-autogen")
    d.ok(SEED_SERVERS)
    d.ok("LOAD MYSQL SERVERS TO RUNTIME")
    d.ok("SAVE MYSQL SERVERS TO DISK")
    return d


def pool(double):
    return {(int(hg), host, int(port)): (status, int(used)) for hg, host, port, status, used in double.ok(
        "SELECT hostgroup, srv_host, srv_port, status, ConnUsed FROM stats_mysql_connection_pool")}


def history(double, layer):
    return [(host, int(hg), status) for host, hg, status in double.ok(
        f"SELECT hostname, hostgroup_id, status FROM stats_double_status_history WHERE layer='{layer}' ORDER BY seq")]


def set_status(double, host, status):
    double.ok(f"UPDATE mysql_servers SET status='{status}' WHERE hostname='{host}'")
    double.ok("LOAD MYSQL SERVERS TO RUNTIME")


def test_pool_lists_runtime_servers_idle_by_default(double):
    assert pool(double) == {(10, "node1", 3306): ("ONLINE", 0), (11, "node1", 3306): ("ONLINE", 0),
                            (11, "node2", 3306): ("ONLINE", 0)}
    assert "ERROR 1045" in double.err("UPDATE stats_mysql_connection_pool SET ConnUsed=1")


def test_busy_connections_drain_after_offline_soft(double):
    double.ok("INSERT INTO double_busy_connections (srv_host, srv_port, conn_used, drain_ms) VALUES ('node1', 3306, 3, 400)")
    assert pool(double)[(10, "node1", 3306)] == ("ONLINE", 3)
    assert pool(double)[(11, "node1", 3306)] == ("ONLINE", 3)  # every hostgroup the backend is in
    double.ok("UPDATE mysql_servers SET status='OFFLINE_SOFT' WHERE hostname='node1'")
    assert pool(double)[(10, "node1", 3306)] == ("ONLINE", 3)  # memory only: nothing changed yet
    double.ok("LOAD MYSQL SERVERS TO RUNTIME")
    assert pool(double)[(10, "node1", 3306)] == ("OFFLINE_SOFT", 3)  # in-flight work goes on
    deadline = time.monotonic() + 10
    while pool(double)[(10, "node1", 3306)][1] != 0:
        assert time.monotonic() < deadline, pool(double)
        time.sleep(0.05)
    assert pool(double)[(11, "node2", 3306)] == ("ONLINE", 0)
    set_status(double, "node1", "ONLINE")
    assert pool(double)[(10, "node1", 3306)] == ("ONLINE", 3)


def test_never_draining_and_hard_offline(double):
    double.ok("INSERT INTO double_busy_connections (srv_host, conn_used, drain_ms) VALUES ('node2', 2, -1)")
    set_status(double, "node2", "OFFLINE_SOFT")
    time.sleep(0.2)
    assert pool(double)[(11, "node2", 3306)] == ("OFFLINE_SOFT", 2)
    set_status(double, "node2", "OFFLINE_HARD")
    assert pool(double)[(11, "node2", 3306)] == ("OFFLINE_HARD", 0)


def test_status_history_per_layer(double):
    set_status(double, "node2", "OFFLINE_SOFT")
    set_status(double, "node2", "ONLINE")
    assert history(double, "runtime")[-2:] == [("node2", 11, "OFFLINE_SOFT"), ("node2", 11, "ONLINE")]
    assert [h for h in history(double, "disk") if h[0] == "node2"] == [("node2", 11, "ONLINE")]
    double.ok("UPDATE mysql_servers SET status='OFFLINE_SOFT' WHERE hostname='node2'")
    double.ok("SAVE MYSQL SERVERS TO DISK")
    assert history(double, "disk")[-1] == ("node2", 11, "OFFLINE_SOFT")
    double.ok("UPDATE disk.mysql_servers SET status='ONLINE' WHERE hostname='node2'")  # direct disk write
    assert history(double, "disk")[-1] == ("node2", 11, "ONLINE")
    double.ok("DELETE FROM mysql_servers WHERE hostname='node2'")
    double.ok("LOAD MYSQL SERVERS TO RUNTIME")
    assert history(double, "runtime")[-1] == ("node2", 11, "")
    times = [float(t) for (t,) in double.ok("SELECT at FROM stats_double_status_history ORDER BY seq")]
    assert times == sorted(times) and abs(times[-1] - time.time()) < 60
