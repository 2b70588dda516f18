"""restart-expected (roles/mysql_forecast.py): the manifest drains a node in ProxySQL only when the
mysql role's next offer or disable will really restart the server."""

import argparse
import hashlib
import os

from dbtls_agent.roles.mysql import forecast


def test_disable_restarts_only_restart_only_servers_with_something_to_restore(tmp_path, monkeypatch):
    from dbtls_agent import state
    from dbtls_agent.roles.mysql import role as mysql_role

    ctx = argparse.Namespace(cert_dir=str(tmp_path))
    monkeypatch.setattr(mysql_role, "detect", lambda: {"flavor": "mariadb", "version": "10.11.6"})
    assert forecast.disable_restarts(ctx)[0] is False  # nothing of ours on the node
    state.ChangeSet(str(tmp_path), "mysql").write(str(tmp_path / "ssl-config.cnf"), b"[mysqld]\n")
    assert forecast.disable_restarts(ctx) == (True, "mariadb 10.11.6 restarts to drop the TLS configuration")
    monkeypatch.setattr(mysql_role, "detect", lambda: {"flavor": "mysql", "version": "8.0.36"})
    assert forecast.disable_restarts(ctx)[0] is False
    monkeypatch.setattr(mysql_role, "detect", lambda: None)
    assert forecast.disable_restarts(ctx)[0] is False


def test_an_unfinished_disable_restarts_on_its_rerun(tmp_path, monkeypatch):
    from dbtls_agent.roles.mysql import role as mysql_role

    monkeypatch.setattr(mysql_role, "detect", lambda: {"flavor": "mariadb", "version": "10.11.6"})
    journal = tmp_path / ".dbtls-state" / "mysql.journal.json"
    journal.parent.mkdir()
    journal.write_text('{"command": "disable", "finished": false, "steps": ["replica"]}')
    assert forecast.disable_restarts(argparse.Namespace(cert_dir=str(tmp_path)))[0] is True
    journal.write_text('{"command": "disable", "finished": true, "steps": ["done"]}')
    assert forecast.disable_restarts(argparse.Namespace(cert_dir=str(tmp_path)))[0] is False


DER = b"\x30\x03\x02\x01\x01"
PEM = b"-----BEGIN CERTIFICATE-----\nMAMCAQE=\n-----END CERTIFICATE-----\n"


class FakeNode:
    def __init__(self, ctx, flavor="mariadb", version=(10, 11, 6), have_ssl="DISABLED"):
        self.cert_dir = ctx.cert_dir
        self.server_dir = os.path.join(ctx.cert_dir, "server")
        self.root_crt = os.path.join(self.server_dir, "root.crt")
        self.flavor, self.version, self.have_ssl = flavor, version, have_ssl

    def probe(self):
        from dbtls_agent.roles.mysql import probe

        return probe.ProbeResult(hashlib.sha256(DER).hexdigest(), DER, "TLSv1.3", "", "")

    def live(self):
        ours = self.have_ssl == "YES"
        return {"have_ssl": self.have_ssl, "ssl_cert": os.path.join(self.server_dir, "server.crt") if ours else "",
                "ssl_key": os.path.join(self.server_dir, "server.key") if ours else "",
                "ssl_ca": self.root_crt if ours else ""}


def test_offer_restarts_follows_the_roles_rules(tmp_path, monkeypatch):
    from dbtls_agent.roles.mysql import cipherorder, mycnf, node
    from dbtls_agent.roles.mysql import role as mysql_role

    conf_d = tmp_path / "conf.d"
    conf_d.mkdir()
    monkeypatch.setattr(node, "dropin_plan", lambda read: (str(conf_d), None))

    class Backend:
        def public_key_info(self, pem):
            return {"key_type": "ecdsa-p256"}
    monkeypatch.setattr(mysql_role, "get_backend", lambda: Backend())
    (tmp_path / "server").mkdir()
    (tmp_path / "server" / "server.crt").write_bytes(PEM)
    ctx = argparse.Namespace(cert_dir=str(tmp_path), min_tls="TLSv1.2")
    cases = [({"have_ssl": "DISABLED"}, True, "does not serve our certificate files"),
             ({"flavor": "mysql", "version": (8, 0, 36)}, False, "without a restart"),
             ({"flavor": "mysql", "version": (5, 7, 44)}, True, "does not serve"),
             ({"have_ssl": "YES"}, True, "settings in"),  # no ssl-config.cnf yet
             ]
    for kwargs, expected, words in cases:
        monkeypatch.setattr(mysql_role, "Node", lambda c, kw=kwargs: FakeNode(c, **kw))
        restart, reason = forecast.offer_restarts(ctx)
        assert (restart, words in reason) == (expected, True), (kwargs, reason)
    monkeypatch.setattr(mysql_role, "Node", lambda c: FakeNode(c, have_ssl="YES"))
    (conf_d / mycnf.SSL_CONFIG_NAME).write_text(mycnf.render_ssl_config(
        str(tmp_path), key_type="ecdsa-p256", flavor="mariadb", version=(10, 11, 6), require_tls=True))
    monkeypatch.setattr(cipherorder, "pending", lambda *a: False)
    assert forecast.offer_restarts(ctx) == (False, "mariadb 10.11.6 already serves TLS with these settings")
    monkeypatch.setattr(cipherorder, "pending", lambda *a: True)  # only the OpenSSL files change
    assert forecast.offer_restarts(ctx) == (True, "mysqld's OpenSSL settings (server cipher order) change")
    monkeypatch.setattr(cipherorder, "pending", lambda *a: False)
    ctx.min_tls = "TLSv1.3"  # tls_version changes: MariaDB restarts
    assert forecast.offer_restarts(ctx)[0] is True
    ctx.min_tls = "TLSv1.2"
    (tmp_path / "server" / "server.crt").write_bytes(PEM.replace(b"MAMCAQE=", b"MAMCAQI="))
    # a new certificate with the same settings: swapped live (FLUSH SSL) on MariaDB 10.4.1+, restart before
    assert forecast.offer_restarts(ctx) == (False, "mariadb 10.11.6 loads the new certificate with FLUSH SSL")
    monkeypatch.setattr(mysql_role, "Node", lambda c: FakeNode(c, version=(10, 3, 39), have_ssl="YES"))
    (conf_d / mycnf.SSL_CONFIG_NAME).write_text(mycnf.render_ssl_config(
        str(tmp_path), key_type="ecdsa-p256", flavor="mariadb", version=(10, 3, 39)))
    assert forecast.offer_restarts(ctx) == (True, "mariadb 10.3.39 loads a new certificate only at start")
