"""``replication wait``: decisions, statements, and the replica loop against a scripted server."""

import pytest

from dbtls_agent.roles import replwait


def test_missing_pg_standbys():
    rows = [{"application_name": "node102", "address": "10.0.0.2", "state": "streaming"},
            {"application_name": "node103", "address": "10.0.0.3", "state": "catchup"}]
    expected = ["node102@10.0.0.2", "node103@10.0.0.3", "node104@10.0.0.4"]
    assert replwait.missing_pg(expected, rows) == ["node103@10.0.0.3", "node104@10.0.0.4"]
    assert replwait.missing_replicas(["10.0.0.2", "10.0.0.3"], ["10.0.0.3"]) == ["10.0.0.2"]


def test_kick_only_connecting_io_threads_and_not_too_often():
    connecting = {"io_running": "Connecting", "sql_running": "Yes"}
    assert replwait.should_kick(connecting, None, 100.0)
    assert not replwait.should_kick(connecting, 99.0, 100.0)
    assert replwait.should_kick(connecting, 96.0, 100.0)
    assert not replwait.should_kick({"io_running": "Yes", "sql_running": "Yes"}, None, 100.0)
    assert not replwait.should_kick({"io_running": "No", "sql_running": "Yes"}, None, 100.0)  # someone stopped it
    assert replwait.stopped_for_good({"io_running": "Yes", "sql_running": "No"})


@pytest.mark.parametrize("flavor,version,channel,expected", [
    ("mariadb", (10, 11, 6), "", ["STOP REPLICA IO_THREAD", "START REPLICA IO_THREAD"]),
    ("mariadb", (10, 4, 0), "", ["STOP SLAVE IO_THREAD", "START SLAVE IO_THREAD"]),
    ("mariadb", (11, 8, 3), "east", ["STOP REPLICA 'east' IO_THREAD", "START REPLICA 'east' IO_THREAD"]),
    ("mysql", (8, 0, 36), "", ["STOP REPLICA IO_THREAD", "START REPLICA IO_THREAD"]),
    ("mysql", (5, 7, 44), "c'1", ["STOP SLAVE IO_THREAD FOR CHANNEL 'c''1'", "START SLAVE IO_THREAD FOR CHANNEL 'c''1'"]),
])
def test_kick_statements(flavor, version, channel, expected):
    assert replwait.kick_statements(flavor, version, channel) == expected


class Clock:
    def __init__(self):
        self.now = 0.0

    def __call__(self):
        return self.now

    def sleep(self, seconds):
        self.now += seconds


class FakeClient:
    """SHOW ALL SLAVES STATUS answers: Connecting until the IO thread is kicked, then Yes."""

    def __init__(self, clock, reconnects_by_itself_at=60.0, kick_works=True):
        self.clock, self.kicked, self.statements = clock, False, []
        self.at, self.kick_works = reconnects_by_itself_at, kick_works

    def query(self, sql, column_names=False):
        io = "Yes" if (self.kicked and self.kick_works) or self.clock() >= self.at else "Connecting"
        header = "Connection_name\tMaster_Host\tSlave_IO_Running\tSlave_SQL_Running\tLast_IO_Error\n"
        error = "" if io == "Yes" else "error reconnecting to master - retry-time: 60"
        return header + f"\tnode101\t{io}\tYes\t{error}\n"

    def execute(self, statements):
        self.statements.extend(statements)
        self.kicked = True


class FakeNode:
    flavor, version = "mariadb", (10, 11, 6)

    def __init__(self, client):
        self.client = client


def test_replica_in_connecting_is_kicked_and_back_at_once(tmp_path):
    clock = Clock()
    client = FakeClient(clock)
    result = replwait.wait_mysql(FakeNode(client), str(tmp_path), 30, waiter=replwait.Waiter(30, clock, clock.sleep))
    assert result["ok"] and result["side"] == "replica" and result["seconds"] < 2
    assert result["replicas"][0]["kicks"] == 1
    assert client.statements == ["STOP REPLICA IO_THREAD", "START REPLICA IO_THREAD"]


def test_replica_not_back_fails_at_the_deadline(tmp_path):
    clock = Clock()
    client = FakeClient(clock, kick_works=False)
    result = replwait.wait_mysql(FakeNode(client), str(tmp_path), 10, waiter=replwait.Waiter(10, clock, clock.sleep))
    assert not result["ok"] and result["seconds"] >= 10
    assert 3 <= result["replicas"][0]["kicks"] <= 5  # about every KICK_EVERY_S seconds
    line = replwait.failure_line(result, 10)
    assert line.startswith("replication is not back after 10s") and "IO Connecting" in line and "\n" not in line


def test_seen_record(tmp_path):
    cert_dir = str(tmp_path)
    replwait.remember(cert_dir, "postgres", ["a@1"])
    replwait.remember(cert_dir, "postgres", ["b@2"])
    assert replwait.load_seen(cert_dir)["postgres"] == ["a@1", "b@2"]
    replwait.save_seen(cert_dir, "postgres", ["b@2"])
    assert replwait.load_seen(cert_dir) == {"postgres": ["b@2"]}
    replwait.save_seen(str(tmp_path / "absent"), "mysql", ["x"])  # no add-on state there: nothing written
    assert not (tmp_path / "absent").exists()
