"""The pre-flight analyses (PostgreSQL, MySQL family, ProxySQL), their text form, and the stop rule."""

import pytest

from dbtls_agent.commands import preflight_text
from dbtls_agent.errors import AgentError
from dbtls_agent.roles import lockout
from dbtls_agent.roles.mysql import preflight
from dbtls_agent.roles.postgres import preflight as pgpreflight
from dbtls_agent.roles.proxysql import report as proxysqlreport

HBA = ("local all all peer\nhost all all 127.0.0.1/32 md5\nhost all pgpool 0.0.0.0/0 md5\n"
       "host all all 0.0.0.0/0 md5\nhost replication all 0.0.0.0/0 md5\nhostnossl all legacy 10.9.0.0/16 md5\n")
MD5 = "md5" + "0" * 32
SCRAM = "SCRAM-SHA-256$4096:c2FsdA==$a2V5:a2V5"


def pg_facts(sessions=(), offered_at=None):
    roles = [("app_md5", MD5), ("app_pool", MD5), ("app_scram", SCRAM), ("legacy", MD5), ("webadmin", MD5),
             ("postgres", ""), ("replication", MD5)]
    return {
        "version": "15.4", "major": 15, "in_recovery": False, "hba_file": "pg_hba.conf", "hba_text": HBA,
        "roles": [{"name": n, "secret": pgpreflight.secret_kind(s), "superuser": n == "postgres",
                   "replication": n == "replication"} for n, s in sorted(roles)],
        "memberships": [], "sessions": list(sessions), "now": 2000.0, "ssl": "on" if offered_at else "off",
        "offered_at": offered_at,
        "standbys": [{"application_name": "node102", "address": "10.0.0.2", "state": "streaming", "tls": True,
                      "sync_state": "async", "user": "replication"}],
    }


def session(pid, user, addr, tls, started, app="", backend_type="client backend", db="postgres"):
    return {"pid": pid, "user": user, "address": addr, "application": app, "database": db, "tls": tls,
            "tls_version": None, "backend_type": backend_type, "started": started}


def test_pg_roles_md5_remote_and_needs_action():
    report = pgpreflight.analyse(pg_facts(), rehashed=["webadmin"])
    assert report["md5_roles"] == ["app_md5", "app_pool", "legacy", "replication", "webadmin"]
    assert report["scram_roles"] == ["app_scram"] and report["no_password_roles"] == ["postgres"]
    assert report["md5_rules_after_enable"] == ["app_md5", "app_pool", "legacy", "replication"]
    remote = {r["role"]: [x["line"] for x in r["rules"]] for r in report["remote_roles"]}
    assert remote["app_md5"] == [4, 5] and remote["legacy"] == [4, 5, 6] and "postgres" not in remote
    assert [n["who"] for n in report["needs_action"]] == ["app_md5", "app_pool", "legacy"]  # cluster roles apart
    assert all(n["kind"] == lockout.MD5_PASSWORD for n in report["needs_action"])
    assert report["plaintext_rules_kept"] == [{"line": 6, "type": "hostnossl", "user": "legacy",
                                               "address": "10.9.0.0/16"}]
    assert report["blockers"] == [] and report["replication"]["standbys"][0]["state"] == "streaming"


def test_pg_plaintext_sessions_before_and_after_tls_was_offered():
    sessions = [session(1, "app_md5", "10.0.0.5", False, 900.0, "oldapp"),      # before TLS: reconnect note
                session(2, "app_md5", "10.0.0.6", False, 1500.0, "newapp"),     # after TLS: blocker
                session(3, "legacy", "10.9.1.1", False, 1500.0),                # hostnossl rule: keeps working
                session(4, "app_scram", "10.0.0.7", True, 1500.0),              # TLS: unchanged
                session(5, "app_md5", "127.0.0.1", False, 1500.0),              # loopback rule: unchanged
                session(6, "webadmin", "10.0.0.8", False, 1500.0, "dbtls-agent"),  # our own probe: left out
                session(7, "replication", "10.0.0.2", False, 900.0, "node102", "walsender", "")]
    report = pgpreflight.analyse(pg_facts(sessions, offered_at=1000.0))
    plain = {s["pid"]: s["after"] for s in report["sessions_without_tls"]}
    assert plain == {1: "refused", 2: "refused", 3: "plaintext-rule", 7: "refused"}
    assert [b["who"] for b in report["blockers"]] == ["app_md5 from 10.0.0.6 (newapp)"]
    reconnect = [n["who"] for n in report["needs_action"] if n["kind"] == lockout.RECONNECT_TLS]
    assert reconnect == ["app_md5 from 10.0.0.5 (oldapp)"]  # the standby's own enable handles pid 7
    not_offered = pgpreflight.analyse(pg_facts(sessions, offered_at=None))
    assert not_offered["blockers"] == []  # nobody had the choice yet


def test_pg_text_form_is_short():
    report = pgpreflight.analyse(pg_facts([session(2, "app_md5", "10.0.0.6", False, 1500.0, "newapp")], 1000.0))
    text = preflight_text.render(report)
    lines = text.splitlines()
    assert 3 <= len(lines) <= 8, text
    assert lines[0].startswith("PostgreSQL 15.4 (primary)") and "app_md5" in text and lines[-1].startswith("STOP:")


def test_stop_or_go():
    blockers = [{"who": "app from 10.0.0.6", "why": "no TLS", "fix": "x"}]
    with pytest.raises(AgentError) as info:
        lockout.stop_or_go(blockers, False, lambda m: None)
    assert "\n" not in str(info.value) and "--enforce-anyway" in str(info.value)
    said = []
    lockout.stop_or_go(blockers, True, said.append)
    assert said and "app from 10.0.0.6" in said[0]
    lockout.stop_or_go([], False, said.append)


def my_facts(pfs=None, have_ssl="YES", offered=None, server_start=500.0):
    return {"flavor": "mariadb", "version": "10.11.6", "have_ssl": have_ssl, "performance_schema": pfs is not None,
            "require_secure_transport": "OFF", "own_connection": 99, "now": 1000.0, "server_start": server_start,
            "accounts": [{"user": "app", "host": "%", "ssl_type": ""}, {"user": "secure", "host": "%", "ssl_type": "ANY"},
                         {"user": "root", "host": "localhost", "ssl_type": ""}],
            "processes": [{"id": 5, "user": "app", "host": "10.0.0.5:40000", "database": "db", "command": "Sleep"},
                          {"id": 12, "user": "app", "host": "10.0.0.6:40001", "database": "db", "command": "Sleep"},
                          {"id": 13, "user": "app", "host": "10.0.0.9:40002", "database": "db", "command": "Sleep"},
                          {"id": 14, "user": "repl", "host": "10.0.0.2:40003", "database": "", "command": "Binlog Dump"},
                          {"id": 15, "user": "root", "host": "localhost", "database": "", "command": "Query"},
                          {"id": 16, "user": "system user", "host": "", "database": "", "command": "Daemon"}],
            "pfs": pfs, "channels": [], "offered": offered, "proxy_addresses": ["10.0.0.9"]}


def test_mysql_sessions_with_performance_schema():
    pfs = {5: {"connection_type": "TCP/IP", "cipher": ""}, 12: {"connection_type": "TCP/IP", "cipher": ""},
           13: {"connection_type": "TCP/IP", "cipher": ""}, 14: {"connection_type": "SSL/TLS", "cipher": "TLS_AES"}}
    report = preflight.analyse(my_facts(pfs, offered={"conn_id": 10, "server_start": 500.0}))
    tls = {s["id"]: s["tls"] for s in report["sessions"]}
    assert tls == {5: False, 12: False, 13: False, 14: True}  # socket and system threads are not sessions here
    assert [b["who"] for b in report["blockers"]] == ["app from 10.0.0.6"]  # after the offer; 10.0.0.9 is a proxy
    assert [n["who"] for n in report["needs_action"]] == ["app from 10.0.0.5"]
    assert report["require_tls_would_refuse"]["accounts_without_tls_requirement"] == ["app@%"]
    assert report["replication"]["replicas"] == ["10.0.0.2"]
    restarted = preflight.analyse(my_facts(pfs, offered={"conn_id": 10, "server_start": 100.0}))
    assert len(restarted["blockers"]) == 2  # restarted since the offer: every session came later


def test_mysql_without_performance_schema():
    unknown = preflight.analyse(my_facts(None))
    assert {s["tls"] for s in unknown["sessions"]} == {None} and unknown["blockers"] == []
    assert unknown["needs_action"][0]["kind"] == lockout.TLS_UNKNOWN
    plain = preflight.analyse(my_facts(None, have_ssl="DISABLED"))
    assert {s["tls"] for s in plain["sessions"]} == {False}  # no TLS offered: every session is plaintext
    assert plain["blockers"] == [] and len(plain["sessions_without_tls"]) == 4
    text = preflight_text.render(plain)
    assert text.startswith("mariadb 10.11.6") and len(text.splitlines()) <= 8


@pytest.mark.parametrize("host,address", [("10.0.0.5:3306", "10.0.0.5"), ("localhost", "localhost"),
                                          ("[::1]:4000", "::1"), ("fe80::1:4000", "fe80::1"), ("db.example", "db.example")])
def test_split_host(host, address):
    assert preflight.split_host(host) == address


def test_proxysql_users_refused_by_use_ssl():
    users = [["app", "1", "0", "1", "1", "10"], ["secure", "1", "1", "1", "1", "10"],
             ["off", "0", "0", "1", "1", "10"], ["backend_only", "1", "0", "0", "1", "10"]]
    report = proxysqlreport.analyse(users, [["10", "node101", "3306", "1", "ONLINE"]], "false", None)
    assert report["require_tls_would_refuse"]["users_without_use_ssl"] == ["app"]
    assert report["have_ssl"] is False and report["servers"][0]["use_ssl"] is True
    assert report["needs_action"][0]["who"] == "app"
    assert preflight_text.render(report).splitlines()[1].endswith("app")
