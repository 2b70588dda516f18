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
