"""``disable --role pgpool`` refuses while a backend refuses Pgpool's plaintext health checks.

psql is replaced by a fake: only the decision is tested here (the docker test
tests/docker/test_hardening_rollback.py runs it against real servers).
"""

from __future__ import annotations

import pytest

from dbtls_agent.errors import AgentError
from dbtls_agent.roles.pgpool import facts as pgpool_facts
from dbtls_agent.roles.pgpool import role as pgpool

CONF = """
backend_hostname0 = 'node101'
backend_port0 = 5432
backend_hostname1 = 'node102'
backend_port1 = 5433
#backend_hostname2 = 'commented'
health_check_user = 'pgpool'
health_check_password = 'secret'
"""


def test_backends_are_read_in_order_with_ports():
    assert pgpool_facts.backends(CONF) == [("node101", 5432), ("node102", 5433)]


def _fake_psql(answers, seen):
    def psql(sql, **kw):
        seen.append(kw)
        answer = answers[kw["host"]]
        if answer:
            raise AgentError(answer)
        return [["1"]]
    return psql


def test_hba_refusal_of_plaintext_is_refused_with_one_line(monkeypatch):
    seen = []
    monkeypatch.setattr(pgpool.client, "psql", _fake_psql({"node101": None, "node102": (
        'FATAL:  no pg_hba.conf entry for host "10.0.0.4", user "pgpool", database "postgres", no encryption')}, seen))
    with pytest.raises(AgentError) as info:
        pgpool._guard_backends_plaintext(CONF)
    message = str(info.value)
    assert "\n" not in message and "node102:5433" in message and "--force" in message
    assert all(kw["extra_conninfo"] == "sslmode=disable" and kw["db_user"] == "pgpool" for kw in seen)
    # The probe travels without TLS to addresses from pgpool.conf: never with the real password.
    assert seen and all(kw["password"] == pgpool.PROBE_PASSWORD != "secret" for kw in seen)


@pytest.mark.parametrize("error", [None, 'FATAL:  password authentication failed for user "pgpool"',
                                   "could not connect to server: Connection refused"])
def test_other_answers_do_not_block_disable(monkeypatch, error):
    monkeypatch.setattr(pgpool.client, "psql", _fake_psql({"node101": error, "node102": error}, []))
    pgpool._guard_backends_plaintext(CONF)
