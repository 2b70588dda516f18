"""Pgpool-II's own OpenSSL configuration: NoRenegotiation where its libssl is 1.1.x, nothing elsewhere."""

import pytest

from dbtls_agent import state
from dbtls_agent.roles.mysql import cipherorder
from dbtls_agent.roles.pgpool import opensslconf

LDD_111 = "\tlibssl.so.1.1 => /usr/lib/x86_64-linux-gnu/libssl.so.1.1 (0x00007f)\n"
LDD_3 = "\tlibssl.so.3 => /lib/x86_64-linux-gnu/libssl.so.3 (0x00007f)\n"
LDD_EL7 = "\tlibssl.so.10 => /lib64/libssl.so.10 (0x00007f)\n"


@pytest.mark.parametrize("ldd,version,needed", [
    (LDD_111, (1, 1), True), (LDD_3, (3, 0), False), (LDD_EL7, (10, 0), False), ("not a dynamic executable", None, False),
])
def test_only_openssl_111_needs_the_option(ldd, version, needed):
    assert opensslconf.libssl_version(ldd) == version
    assert opensslconf.needs_option(opensslconf.libssl_version(ldd)) is needed


def _runner(ldd, openssldir):
    def run(argv, timeout=60.0, stdin=None):
        if argv[0] == "ldd":
            return 0, ldd, ""
        if argv[:2] == ["openssl", "version"]:
            return 0, f'OPENSSLDIR: "{openssldir}"\n', ""
        return 1, "", "not here"
    return run


def test_write_files_then_disable_removes_them(tmp_path, monkeypatch):
    monkeypatch.setattr(cipherorder, "SYSTEMD_DIR", str(tmp_path / "systemd"))
    (tmp_path / "ssl").mkdir()
    (tmp_path / "ssl" / "openssl.cnf").write_text("openssl_conf = init\n[init]\nssl_conf = ssl\n[ssl]\n"
                                                  "system_default = sysdef\n[sysdef]\nMinProtocol = TLSv1.2\n")
    cs = state.ChangeSet(str(tmp_path / "certs"), "pgpool")
    before = {}
    out = opensslconf.write_files(cs, before, _runner(LDD_111, str(tmp_path / "ssl")))
    assert out["changed"] and out["unit"] == "pgpool.service"
    conf = tmp_path / "systemd" / "pgpool.service.d" / "dbtls-openssl.cnf"
    dropin = tmp_path / "systemd" / "pgpool.service.d" / "dbtls-openssl.conf"
    assert conf.read_text().endswith("[ sysdef ]\nOptions = NoRenegotiation\n")
    assert ".include " + str(tmp_path / "ssl" / "openssl.cnf") in conf.read_text()
    assert "Environment=OPENSSL_CONF=" + str(conf) in dropin.read_text()
    assert before == {str(conf): None, str(dropin): None}
    again = opensslconf.write_files(cs, {}, _runner(LDD_111, str(tmp_path / "ssl")))
    assert not again["changed"]  # idempotent: no second restart
    files = [{"path": p, "result": cs.restore(p)} for p in list(cs.paths())]
    assert opensslconf.removed(files, _runner(LDD_111, "")) is True
    assert not (tmp_path / "systemd" / "pgpool.service.d").exists()


def test_openssl_3_writes_nothing(tmp_path, monkeypatch):
    monkeypatch.setattr(cipherorder, "SYSTEMD_DIR", str(tmp_path / "systemd"))
    cs = state.ChangeSet(str(tmp_path / "certs"), "pgpool")
    out = opensslconf.write_files(cs, {}, _runner(LDD_3, "/nowhere"))
    assert not out["changed"] and "libssl 3.0" in out["skip"]
    assert not (tmp_path / "systemd").exists() and not cs.entries
    assert opensslconf.removed([{"path": "/etc/pgpool-II/pgpool.conf", "result": "restored"}],
                                 _runner(LDD_3, "")) is False


def test_a_tls_13_minimum_goes_into_pgpools_openssl_configuration_and_away_again(tmp_path, monkeypatch):
    """Pgpool-II has no TLS minimum setting: MinProtocol in its own OPENSSL_CONF (OpenSSL 3 here,
    which needs no NoRenegotiation); back to the default, the files go and Pgpool restarts once more."""
    monkeypatch.setattr(cipherorder, "SYSTEMD_DIR", str(tmp_path / "systemd"))
    (tmp_path / "ssl").mkdir()
    (tmp_path / "ssl" / "openssl.cnf").write_text("openssl_conf = init\n[init]\nssl_conf = ssl\n[ssl]\n"
                                                  "system_default = sysdef\n[sysdef]\nMinProtocol = TLSv1.2\n")
    cs = state.ChangeSet(str(tmp_path / "certs"), "pgpool")
    out = opensslconf.write_files(cs, {}, _runner(LDD_3, str(tmp_path / "ssl")), min_tls="TLSv1.3")
    conf = tmp_path / "systemd" / "pgpool.service.d" / "dbtls-openssl.cnf"
    assert out["changed"] and out["min_tls_note"] is None
    assert conf.read_text().endswith("[ sysdef ]\nMinProtocol = TLSv1.3\n")  # later lines win over the include
    before = {}
    back = opensslconf.write_files(cs, before, _runner(LDD_3, str(tmp_path / "ssl")), min_tls="TLSv1.2")
    assert back["changed"] and "libssl 3.0" in back["skip"] and back["min_tls_note"] is None
    assert not conf.exists() and not cs.entries and str(conf) in before
    assert not opensslconf.write_files(cs, {}, _runner(LDD_3, str(tmp_path / "ssl")))["changed"]


def test_openssl_111_gets_both_lines_and_old_openssl_says_the_minimum_is_not_enforced(tmp_path, monkeypatch):
    monkeypatch.setattr(cipherorder, "SYSTEMD_DIR", str(tmp_path / "systemd"))
    wanted = opensslconf.plan(_runner(LDD_111, "/nowhere"), "TLSv1.3")
    assert wanted["conf_text"].endswith("Options = NoRenegotiation\nMinProtocol = TLSv1.3\n")
    assert opensslconf.min_tls_note("TLSv1.3", wanted) is None
    old = opensslconf.plan(_runner(LDD_EL7, "/nowhere"), "TLSv1.3")
    assert "skip" in old
    assert "TLSv1.3 is not enforced" in opensslconf.min_tls_note("TLSv1.3", old)
    assert opensslconf.min_tls_note("TLSv1.2", old) is None


def test_proxysql_says_it_cannot_enforce_a_minimum():
    from dbtls_agent.roles.proxysql import plan

    assert plan.min_tls_note(None) is None
    assert "the minimum TLSv1.3 is not enforced on ProxySQL's frontend" in plan.min_tls_note(["TLSv1.3"])
