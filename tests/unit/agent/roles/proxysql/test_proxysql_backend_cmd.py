"""``proxysql-backend``: the pure parts (SQL, matching, the drain loop, the record), then the whole
command against the ProxySQL admin TEST DOUBLE with the real ``mariadb`` client."""

import argparse
import os
import shutil
import sys
from pathlib import Path

import pytest

from dbtls_agent import cli
from dbtls_agent.errors import AgentError
from dbtls_agent.roles.mysql.client import escape_batch_field
from dbtls_agent.roles.proxysql import admin as proxysql_admin
from dbtls_agent.roles.proxysql import drain
from dbtls_agent.roles.proxysql import plan as pp

sys.path.insert(0, str(Path(__file__).resolve().parents[3] / "doubles"))
from test_proxysql_admin_double import PASSWORD, start_double  # noqa: E402,F401  (fixture)


def batch(rows):
    return "".join("\t".join(escape_batch_field(None if c is None else str(c)) for c in r) + "\n" for r in rows)


# -- pure parts --------------------------------------------------------------------------------------

def test_status_statements_touch_only_the_rows_and_never_save():
    stmts = pp.set_status_statements([(10, "node1", 3306), (11, "o'x", 3307)], pp.OFFLINE_SOFT, pp.ONLINE)
    assert stmts == [
        "UPDATE mysql_servers SET status='OFFLINE_SOFT' WHERE hostgroup_id=10 AND hostname='node1' AND port=3306 "
        "AND UPPER(status)='ONLINE'",
        "UPDATE mysql_servers SET status='OFFLINE_SOFT' WHERE hostgroup_id=11 AND hostname='o''x' AND port=3307 "
        "AND UPPER(status)='ONLINE'",
        "LOAD MYSQL SERVERS TO RUNTIME"]
    assert not any("SAVE" in s for s in pp.set_status_statements([(1, "a", 1)], pp.ONLINE, pp.OFFLINE_SOFT))
    assert pp.set_status_statements([], pp.ONLINE, pp.OFFLINE_SOFT) == []
    with pytest.raises(AgentError):
        pp.set_status_statements([(1, "a", 1)], "SHUNNED", pp.ONLINE)
    assert pp.disk_online_statements([(10, "node1", 3306)]) == [
        "UPDATE disk.mysql_servers SET status='ONLINE' WHERE hostgroup_id=10 AND hostname='node1' AND port=3306 "
        "AND UPPER(status)='OFFLINE_SOFT'"]


def test_match_on_every_name_case_and_port():
    rows = pp.parse_server_status(batch([(10, "node1", 3306, "ONLINE"), (11, "NODE1", 3306, "online"),
                                         (11, "10.0.0.5", 3306, "OFFLINE_SOFT"), (11, "node2", 3306, "ONLINE"),
                                         (12, "node1", 3307, "ONLINE")]))
    assert rows[1][3] == "ONLINE"
    names = ["node1", "node1-env.example.", "10.0.0.5"]
    assert [r[:3] for r in pp.match_servers(rows, names)] == [
        (10, "node1", 3306), (11, "NODE1", 3306), (11, "10.0.0.5", 3306), (12, "node1", 3307)]
    assert [r[0] for r in pp.match_servers(rows, names, port=3307)] == [12]
    assert pp.match_servers(rows, ["node", " ", ""]) == []
    with pytest.raises(AgentError):
        pp.server_status_query("stats.")


def test_conn_used_sums_every_hostgroup_of_the_backend():
    pool = pp.parse_pool(batch([(10, "node1", 3306, "OFFLINE_SOFT", 2), (11, "node1", 3306, "ONLINE", 1),
                                (11, "node2", 3306, "ONLINE", 7), (11, "node1", 3307, "ONLINE", 5)]))
    assert pp.conn_used(pool, [("NODE1", 3306)]) == 3
    assert pp.conn_used(pool, [("node3", 3306)]) == 0
    with pytest.raises(AgentError):
        pp.parse_pool("1\tnode1\n")


def test_addresses_split_and_resolved():
    assert drain.split_addresses(["node1 node1-env.x", "10.0.0.5,node1"]) == [
        "node1", "node1-env.x", "10.0.0.5"]
    fake = {"node1": ["10.0.0.5"], "node1-env.x": ["10.0.0.5", "fd00::5"]}
    assert drain.candidate_names(["node1", "node1-env.x"], lambda n: fake.get(n, [])) == [
        "node1", "node1-env.x", "10.0.0.5", "fd00::5"]
    assert "127.0.0.1" in drain.resolve_ips("127.0.0.1")
    assert drain.resolve_ips("no-such-host.invalid") == []


class Clock:
    def __init__(self):
        self.now = 100.0

    def __call__(self):
        return self.now

    def sleep(self, seconds):
        self.now += seconds


def test_wait_drained_polls_until_zero_or_deadline():
    clock = Clock()
    used = iter([3, 2, 0])
    read = lambda: batch([(10, "node1", 3306, "OFFLINE_SOFT", next(used))])  # noqa: E731
    assert drain.wait_drained(read, [("node1", 3306)], 10, clock, clock.sleep, 0.5) == (True, 0, 1.0)
    clock = Clock()
    read = lambda: batch([(10, "node1", 3306, "OFFLINE_SOFT", 4)])  # noqa: E731
    drained, left, waited = drain.wait_drained(read, [("node1", 3306)], 2, clock, clock.sleep, 0.5)
    assert (drained, left, waited) == (False, 4, 2.0)
    assert drain.wait_drained(read, [("node1", 3306)], 0, clock, clock.sleep)[0] is False


def test_record_keeps_the_first_entry_and_forgets_on_drop(tmp_path):
    record = drain.Record(str(tmp_path))
    record.add([(10, "node1", 3306, "ONLINE")], ["node1"])
    record.add([(10, "node1", 3306, "ONLINE"), (11, "node1", 3306, "ONLINE")], ["node1"])
    assert [drain._key(e) for e in drain.Record(str(tmp_path)).entries] == [
        (10, "node1", 3306), (11, "node1", 3306)]
    path = tmp_path / ".dbtls-state" / "proxysql-drain.role.json"
    assert oct(path.stat().st_mode & 0o777) == "0o600"
    record.drop([(10, "node1", 3306), (11, "node1", 3306)])
    assert not path.exists()


def test_cli_refuses_bad_combinations(tmp_path, capsys):
    for argv in (["proxysql-backend", "--state", "offline-soft", "--all"],
                 ["proxysql-backend", "--state", "online"],
                 ["proxysql-backend", "--state", "offline-soft", "--address", "x", "--drain-timeout", "-1"]):
        assert cli.main(argv + ["--cert-dir", str(tmp_path)]) == 2
    assert "--all only goes with --state online" in capsys.readouterr().err


def test_online_with_nothing_recorded_needs_no_login(tmp_path, monkeypatch):
    def no_admin(ctx):
        raise AssertionError("must not log in")
    monkeypatch.setattr(drain, "_open_admin", no_admin)
    ctx = argparse.Namespace(cert_dir=str(tmp_path))
    result = drain.put_online(ctx, ["node1"], None, False, resolve=lambda n: [])
    assert result["changed"] is False and "nothing recorded" in result["messages"][0]


# -- against the double ----------------------------------------------------------------------------------

@pytest.fixture
def admin_double(start_double, tmp_path, monkeypatch):  # noqa: F811
    require_client = shutil.which("mariadb") or shutil.which("mysql")
    if not require_client:
        pytest.skip("no mariadb client")
    d = start_double("--no-tls-autogen")
    d.ok("INSERT INTO mysql_servers (hostgroup_id, hostname, port) VALUES (10, 'node1', 3306), "
         "(11, 'node1', 3306), (11, 'node2', 3306), (11, '10.0.0.3', 3306)")
    d.ok("LOAD MYSQL SERVERS TO RUNTIME")
    d.ok("SAVE MYSQL SERVERS TO DISK")
    cnf = tmp_path / "proxysql.cnf"
    cnf.write_text(f'datadir="{d.datadir}"\nadmin_variables=\n{{\n    admin_credentials="admin:{PASSWORD}"\n'
                   f'    mysql_ifaces="0.0.0.0:{d.port}"\n}}\n')
    monkeypatch.setattr(proxysql_admin, "CONFIG_FILES", (str(cnf),))
    d.ctx = argparse.Namespace(cert_dir=str(tmp_path / "certs"))
    os.makedirs(d.ctx.cert_dir)
    return d


def statuses(d, layer=""):
    return {(int(hg), h): s for hg, h, s in d.ok(f"SELECT hostgroup_id, hostname, status FROM {layer}mysql_servers")}


def no_dns(name):
    return []


def test_offline_then_online_touches_only_our_rows_and_never_disk(admin_double):
    d = admin_double
    d.ok("INSERT INTO double_busy_connections (srv_host, conn_used, drain_ms) VALUES ('node1', 2, 300)")
    d.ok("UPDATE mysql_servers SET status='OFFLINE_SOFT' WHERE hostgroup_id=11 AND hostname='node1'")  # someone's
    result = drain.take_offline(d.ctx, ["node1", "node1-env.test"], None, 30, resolve=no_dns)
    assert result["changed"] and result["drained"] and result["drain_seconds"] >= 0.2, result
    assert [(r["hostgroup_id"], r["taken_offline"]) for r in result["rows"]] == [(10, True), (11, False)]
    assert statuses(d, "runtime_")[(10, "node1")] == "OFFLINE_SOFT"
    assert set(statuses(d, "disk.").values()) == {"ONLINE"}
    again = drain.take_offline(d.ctx, ["node1"], None, 30, resolve=no_dns)  # a retry: same record
    assert not again["changed"] and len(drain.Record(d.ctx.cert_dir).entries) == 1
    back = drain.put_online(d.ctx, ["node1"], None, False, resolve=no_dns)
    assert back["rows"] == [{"hostgroup_id": 10, "hostname": "node1", "port": 3306, "runtime_status": "ONLINE"}]
    assert statuses(d, "runtime_")[(11, "node1")] == "OFFLINE_SOFT"  # not ours: left alone
    assert drain.Record(d.ctx.cert_dir).entries == []
    history = d.ok("SELECT layer, status FROM stats_double_status_history WHERE hostgroup_id=10 AND hostname='node1' "
                   "ORDER BY seq")
    assert history == [["runtime", "ONLINE"], ["disk", "ONLINE"], ["runtime", "OFFLINE_SOFT"], ["runtime", "ONLINE"]]


def test_backend_listed_by_ip_is_found_from_its_name(admin_double):
    d = admin_double
    result = drain.take_offline(d.ctx, ["node3"], 3306, 5, resolve=lambda n: ["10.0.0.3"])
    assert [r["hostname"] for r in result["rows"]] == ["10.0.0.3"]
    drain.put_online(d.ctx, ["node3"], 3306, False, resolve=lambda n: ["10.0.0.3"])
    assert set(statuses(d, "runtime_").values()) == {"ONLINE"}


def test_drain_timeout_warns_and_goes_ahead(admin_double):
    d = admin_double
    d.ok("INSERT INTO double_busy_connections (srv_host, conn_used, drain_ms) VALUES ('node2', 1, -1)")
    result = drain.take_offline(d.ctx, ["node2"], None, 0.6, resolve=no_dns)
    assert not result["drained"] and result["conn_used"] == 1 and "still in use" in result["warnings"][0]
    assert statuses(d, "runtime_")[(11, "node2")] == "OFFLINE_SOFT"


def test_unknown_backend_is_nothing_to_do(admin_double):
    d = admin_double
    result = drain.take_offline(d.ctx, ["node9"], None, 5, resolve=no_dns)
    assert not result["changed"] and result["rows"] == [] and "nothing to do" in result["messages"][-1]
    assert not os.path.exists(os.path.join(d.ctx.cert_dir, ".dbtls-state", "proxysql-drain.role.json"))


def test_leftovers_go_back_online_first_and_saved_drains_are_fixed_on_disk(admin_double):
    d = admin_double
    drain.take_offline(d.ctx, ["node1"], None, 5, resolve=no_dns)  # and then the run "dies"
    d.ok("SAVE MYSQL SERVERS TO DISK")  # someone saves meanwhile
    assert statuses(d, "disk.")[(10, "node1")] == "OFFLINE_SOFT"
    result = drain.take_offline(d.ctx, ["node2"], None, 5, resolve=no_dns)
    assert "put back ONLINE" in result["messages"][0] and "node1:3306 (hostgroup 10)" in result["messages"][0]
    assert statuses(d, "runtime_")[(10, "node1")] == "ONLINE"
    assert statuses(d, "disk.")[(10, "node1")] == "ONLINE"
    assert statuses(d, "disk.")[(11, "node2")] == "ONLINE"  # the live drain is not saved
    # The proxysql role does the same before its plans SAVE mysql_servers.
    assert drain.restore_leftovers(proxysql_admin.Admin(d.ctx), d.ctx.cert_dir)
    assert set(statuses(d, "runtime_").values()) == {"ONLINE"}
    assert drain.put_online(d.ctx, [], None, True)["changed"] is False


def test_command_line_end_to_end(admin_double, capsys):
    d = admin_double
    argv = ["--cert-dir", d.ctx.cert_dir, "--address", "node2,10.9.9.9"]
    assert cli.main(["proxysql-backend", "--state", "offline-soft", "--drain-timeout", "5"] + argv) == 0
    assert '"changed": true' in capsys.readouterr().out
    assert statuses(d, "runtime_")[(11, "node2")] == "OFFLINE_SOFT"
    assert cli.main(["proxysql-backend", "--state", "online", "--all", "--cert-dir", d.ctx.cert_dir]) == 0
    assert statuses(d, "runtime_")[(11, "node2")] == "ONLINE"
