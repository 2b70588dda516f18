"""secretsync: secret changes committed so that the standbys apply them first."""

import pytest

from dbtls_agent.roles.postgres import secretsync as pgsecrets


class FakeServer:
    """Answers the SQL pgsecrets sends, like a primary with ``standbys`` streaming standbys."""

    def __init__(self, standbys: int, own_setting: str = "", joins_quorum: bool = True,
                 auto_conf=None, rewrite: bytes = b"") -> None:
        self.standbys, self.setting, self.joins = standbys, own_setting, joins_quorum
        self.auto_conf, self.rewrite = auto_conf, rewrite
        self.sql = []
        self.pending = ""

    def __call__(self, sql: str):
        self.sql.append(sql)
        if sql.startswith("SELECT count(*) FROM pg_stat_replication WHERE state"):
            return [[str(self.standbys)]]
        if sql.startswith("SELECT current_setting"):
            return [["t" if self.setting else "f"]]
        if sql.startswith("ALTER SYSTEM SET"):
            self.pending = sql
            if self.auto_conf is not None:
                self.auto_conf.write_bytes(self.rewrite + b"synchronous_standby_names = 'x'\n")
            return []
        if sql.startswith("ALTER SYSTEM RESET"):
            if self.auto_conf is not None:
                self.auto_conf.write_bytes(self.rewrite)
            return []
        if "sync_state" in sql:
            return [[str(self.standbys if self.joins else 0)]]
        return []


def test_quorum_names_count_every_standby():
    assert pgsecrets.quorum_names(2) == "ANY 2 (*)"
    with pytest.raises(ValueError):
        pgsecrets.quorum_names(0)


def test_commit_sql_is_one_transaction_waiting_for_apply():
    sql = pgsecrets.commit_sql(["ALTER ROLE a PASSWORD 'x';", "ALTER ROLE b PASSWORD 'y'"], 2.5)
    assert sql.splitlines() == ["SET synchronous_commit = remote_apply;", "SET statement_timeout = '2500ms';",
                                "BEGIN;", "ALTER ROLE a PASSWORD 'x';", "ALTER ROLE b PASSWORD 'y';", "COMMIT;"]


def test_standbys_become_synchronous_for_the_commit_only(tmp_path):
    auto = tmp_path / "postgresql.auto.conf"
    auto.write_bytes(b"# ALTER SYSTEM\n")
    server = FakeServer(2, auto_conf=auto, rewrite=b"# ALTER SYSTEM\n")
    synchronous, why = pgsecrets.apply(["ALTER ROLE a PASSWORD 'x'"], str(auto), str(tmp_path / "state"), run=server)
    assert synchronous, why
    kinds = [s.split("\n")[0] for s in server.sql]
    set_at = kinds.index("ALTER SYSTEM SET synchronous_standby_names = 'ANY 2 (*)'")
    commit_at = next(i for i, s in enumerate(server.sql) if "COMMIT;" in s)
    reset_at = kinds.index("ALTER SYSTEM RESET synchronous_standby_names")
    assert set_at < commit_at < reset_at
    assert server.sql[-1] == "SELECT pg_reload_conf()"
    assert auto.read_bytes() == b"# ALTER SYSTEM\n"


def test_auto_conf_bytes_come_back_when_the_rewrite_differs(tmp_path):
    auto = tmp_path / "postgresql.auto.conf"
    original = b"# hand-written comment the server drops\nwork_mem = '8MB'\n"
    auto.write_bytes(original)
    auto.chmod(0o640)
    server = FakeServer(1, auto_conf=auto, rewrite=b"# Do not edit\nwork_mem = '8MB'\n")
    pgsecrets.apply(["ALTER ROLE a PASSWORD 'x'"], str(auto), str(tmp_path / "state"), run=server)
    assert auto.read_bytes() == original
    assert auto.stat().st_mode & 0o777 == 0o640


def test_no_standby_means_a_plain_commit(tmp_path):
    server = FakeServer(0)
    assert pgsecrets.apply(["ALTER ROLE a PASSWORD 'x'"], str(tmp_path / "auto"), str(tmp_path / "state"), run=server) == \
        (False, "no standby streams")
    assert not any(s.startswith("ALTER SYSTEM") for s in server.sql)
    assert any("COMMIT;" in s for s in server.sql)


def test_the_operators_own_synchronous_setting_is_left_alone(tmp_path):
    server = FakeServer(1, own_setting="FIRST 1 (s1)")
    synchronous, _ = pgsecrets.apply(["ALTER ROLE a PASSWORD 'x'"], str(tmp_path / "auto"), str(tmp_path / "state"), run=server)
    assert synchronous
    assert not any(s.startswith("ALTER SYSTEM") for s in server.sql)


def test_standbys_that_do_not_join_the_quorum_get_a_plain_commit_and_the_setting_goes(tmp_path, monkeypatch):
    monkeypatch.setattr(pgsecrets, "SYNC_WAIT_S", 0.2)
    auto = tmp_path / "postgresql.auto.conf"
    auto.write_bytes(b"")
    server = FakeServer(1, joins_quorum=False, auto_conf=auto)
    synchronous, why = pgsecrets.apply(["ALTER ROLE a PASSWORD 'x'"], str(auto), str(tmp_path / "state"), run=server)
    assert not synchronous and "did not become synchronous" in why
    assert any("COMMIT;" in s for s in server.sql)
    assert "ALTER SYSTEM RESET synchronous_standby_names" in server.sql


def test_the_window_is_marked_while_open_and_a_leftover_is_closed(tmp_path):
    import os
    state = tmp_path / "state"
    marker = pgsecrets.marker_path(str(state))
    at_commit = []

    class Watching(FakeServer):
        def __call__(self, sql):
            if "COMMIT;" in sql:
                at_commit.append(os.path.exists(marker))
            return super().__call__(sql)

    auto = tmp_path / "auto"
    auto.write_bytes(b"")
    pgsecrets.apply(["ALTER ROLE a PASSWORD 'x'"], str(auto), str(state), run=Watching(1, auto_conf=auto))
    assert at_commit == [True] and not os.path.exists(marker)
    # A killed run never reaches its finally clause: the marker stays, and the next run closes the window.
    (state / "pg-sync-window").write_bytes(b"")
    closer = FakeServer(1)
    assert pgsecrets.close_leftover(str(state), run=closer)
    assert closer.sql == ["ALTER SYSTEM RESET synchronous_standby_names", "SELECT pg_reload_conf()"]
    assert not os.path.exists(marker)
    assert not pgsecrets.close_leftover(str(state), run=closer)
