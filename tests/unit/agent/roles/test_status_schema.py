"""Every role's ``status`` returns the one status document (roles/statusschema.py), and the dashboard
line reads any of them the same way."""

import argparse
import hashlib
import json

import pytest

from dbtls_agent import roles
from dbtls_agent.commands import statusline
from dbtls_agent.roles import base, common, statusschema
from dbtls_agent.roles.mysql import probe as mysqlprobe
from dbtls_agent.roles.proxysql import plan as proxysql_plan

DER = b"\x30\x03\x02\x01\x01"
PEM = b"-----BEGIN CERTIFICATE-----\nMAMCAQE=\n-----END CERTIFICATE-----\n"
SHA = hashlib.sha256(DER).hexdigest()
CERTS = [{"role": "server", "cn": "node101.test", "not_after": "2028-01-01T00:00:00Z", "days_left": 800},
         {"role": "server-root", "sha256": "ff" * 32}]


@pytest.fixture
def ctx(tmp_path, monkeypatch):
    (tmp_path / "server").mkdir()
    (tmp_path / "server" / "server.crt").write_bytes(PEM)
    monkeypatch.setattr(common, "certificates", lambda ctx: list(CERTS))
    return base.Context(argparse.Namespace(cert_dir=str(tmp_path), role="auto", stage="all"), "status")


def _handshake(ok=True):
    return {"ok": ok, "host": "node101.test", "port": 5432, "tls": True, "protocol": "TLSv1.3",
            "cipher": "TLS_AES_256_GCM_SHA384", "sha256": SHA if ok else "00", "expected_sha256": SHA,
            "error": None if ok else "serves a different certificate"}


def _postgres(ctx, monkeypatch, tmp_path, enabled):
    module = roles.load("postgres")
    conf = tmp_path / "postgresql.conf"
    conf.write_text("# dbtls-managed-begin\nssl = on\n# dbtls-managed-end\n" if enabled else "port = 5432\n")
    hba = tmp_path / "pg_hba.conf"
    hba.write_text("host all all 0.0.0.0/0 md5\n")
    monkeypatch.setattr(module.server, "facts", lambda require_running=False: {
        "config_file": str(conf), "hba_file": str(hba), "running": True, "in_recovery": True, "version": "15.4"})
    monkeypatch.setattr(module.apply, "verify_tls", lambda ctx, port=5432, wait_s=0: _handshake(enabled))
    monkeypatch.setattr(module.tlsprobe, "probe", lambda host, port, cafile: _handshake(False))
    return module.status(ctx)


def _pgpool(ctx, monkeypatch, tmp_path, enabled):
    module = roles.load("pgpool")
    conf = tmp_path / "pgpool.conf"
    conf.write_text("# dbtls-managed-begin\nssl = on\n# dbtls-managed-end\n" if enabled else "ssl = off\n")
    hba = tmp_path / "pool_hba.conf"
    hba.write_text("host all all 0.0.0.0/0 md5\n")
    monkeypatch.setattr(module, "detect", lambda: {"config_file": str(conf), "hba_file": str(hba), "running": False,
                                                   "version": "4.3.5"})
    return module.status(ctx)


class _FakeMysqlNode:
    flavor, version, served = "mariadb", (10, 11, 6), SHA

    def __init__(self, ctx):
        self.server_dir = ctx.cert_dir + "/server"

    def live(self):
        return {"have_ssl": "YES", "require_secure_transport": "ON", "ssl_cert": "/x", "port": "3306"}

    def probe(self):
        return mysqlprobe.ProbeResult(self.served, DER, "TLSv1.3", "TLS_AES_256_GCM_SHA384", "10.11.6-MariaDB")


def _mysql(ctx, monkeypatch, tmp_path, enabled):
    module = roles.load("mysql")
    (tmp_path / "ssl-config.cnf").write_text("# Managed by dbtls\n[mysqld]\n" if enabled else "")
    monkeypatch.setattr(_FakeMysqlNode, "served", SHA if enabled else "00" * 32)
    monkeypatch.setattr(module, "Node", _FakeMysqlNode)
    monkeypatch.setattr(module.mysqlnode, "dropin_plan", lambda read: (str(tmp_path), None))
    monkeypatch.setattr(module, "replica_status", lambda node: [
        {"source": "node101", "ssl_allowed": "Yes", "io_running": "Yes", "sql_running": "Yes",
         "verify_server_cert": "No"}])
    return module.status(ctx)


def _proxysql(ctx, monkeypatch, tmp_path, enabled):
    module = roles.load("proxysql")
    if enabled:
        for name in proxysql_plan.FRONTEND_FILES:
            (tmp_path / name).write_bytes(PEM)
    queries = proxysql_plan.verify_queries()
    answers = {queries["variables"]: "mysql-have_ssl\t{}\n".format("true" if enabled else "false"),
               queries["servers"]: f"10\tnode101\t3306\t1\n11\tnode102\t3306\t{int(enabled)}\n",
               queries["users"]: "app\t0\t0\n"}

    class Admin:
        version, datadir = (2, 5, 5), str(tmp_path)

        def __init__(self, ctx):
            self.client = argparse.Namespace(query=answers.__getitem__)

    monkeypatch.setattr(module, "Admin", Admin)
    return module.status(ctx)


STATUS = {"postgres": _postgres, "pgpool": _pgpool, "mysql": _mysql, "proxysql": _proxysql}


def test_every_registered_role_is_covered():
    assert set(STATUS) == set(roles.ROLE_NAMES)


@pytest.mark.parametrize("enabled", [True, False])
@pytest.mark.parametrize("name", roles.ROLE_NAMES)
def test_every_roles_status_is_the_status_document(name, enabled, ctx, monkeypatch, tmp_path):
    doc = STATUS[name](ctx, monkeypatch, tmp_path, enabled)
    assert statusschema.problems(doc) == [], doc
    assert doc["role"] == name and doc["enabled"] is enabled and doc["certificates"] == CERTS
    assert list(doc)[:len(statusschema.FIELDS)] == list(statusschema.FIELDS)
    json.dumps(doc)
    line = statusline.line(doc, {})
    assert "server cert node101.test expires 2028-01-01 (800 days); root sha256 " + ("ff" * 32)[:23] in line
    if enabled and doc["tls"] is not None:
        assert line.startswith("TLS on"), line
    if not enabled:
        assert line.startswith(("TLS off", "TLS on (TLSv1.3), serving another certificate")), line


def test_the_stages_each_role_reports(ctx, monkeypatch, tmp_path):
    assert _postgres(ctx, monkeypatch, tmp_path, True)["stages"] == ["offer"]
    assert _mysql(ctx, monkeypatch, tmp_path, True)["stages"] == ["offer", "use", "require"]
    doc = _proxysql(ctx, monkeypatch, tmp_path, True)
    assert doc["stages"] == ["offer", "use"] and doc["tls"]["note"] == "backends over TLS 2/2"
    assert statusline.tls_state(doc) == "TLS on (backends over TLS 2/2)"


@pytest.mark.parametrize("doc, problem", [
    ({}, "missing role"),
    (dict(statusschema.document("mysql", None, None, ["require", "offer"], None, [])), None),
    (dict(statusschema.document("mysql", None, None, [], None, []), stages=["require", "offer"]), "cluster order"),
    (dict(statusschema.document("mysql", None, None, ["offer"], None, []), enabled=False), "bool(stages)"),
    (statusschema.document("mysql", None, None, [], {"ok": "yes"}, []), "tls: missing check"),
    (statusschema.document("mysql", 15, None, [], None, []), "version"),
    (statusschema.document("mysql", None, None, [], None, {}), "certificates"),
])
def test_problems_name_what_is_wrong(doc, problem):
    found = statusschema.problems(doc)
    if problem is None:
        assert found == [] and doc["stages"] == ["offer", "require"]
    else:
        assert any(problem in p for p in found), found


def test_the_line_of_a_server_that_cannot_be_asked_uses_inspect():
    line = statusline.line({"error": "no role found"}, {"certificates": CERTS})
    assert line.startswith("TLS not verified (no role found); server cert node101.test"), line
