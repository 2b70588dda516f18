"""Every PostgreSQL/Pgpool-II editor over every corpus file (tests/corpus/{postgresql,pg_hba,pgpool}).

Passing files must survive each editor idempotently and come back byte for byte on revert; failing
files must be refused with a one-line AgentError.
"""

import pathlib

import pytest

from dbtls_agent.errors import AgentError
from dbtls_agent.roles.postgres import conf, hba

CORPUS = pathlib.Path(__file__).resolve().parents[4] / "corpus"


def _files(kind, outcome):
    """(path, flavor) pairs; ``flavor`` is "conf", "hba" or "pool_hba"."""
    result = []
    for folder in ("postgresql", "pg_hba", "pgpool"):
        for path in sorted((CORPUS / folder / outcome).glob("*")):
            if folder == "postgresql":
                flavor = "conf"
            elif folder == "pg_hba":
                flavor = "hba"
            else:
                flavor = "pool_hba" if "pool_hba" in path.name else "conf"
            if flavor in kind:
                result.append(pytest.param(path, flavor, id=f"{folder}/{path.name}"))
    return result


def read(path):
    # surrogateescape keeps non-UTF-8 bytes (latin-1 comments) intact through the round trip.
    return path.read_bytes().decode("utf-8", "surrogateescape")


CONF_PARAMS = [
    {"ssl": True, "ssl_cert_file": "/var/lib/jelastic/keys/SSL-TLS/server/server.crt",
     "ssl_key_file": "/var/lib/jelastic/keys/SSL-TLS/server/server.key",
     "ssl_ca_file": "/var/lib/jelastic/keys/SSL-TLS/server/root.crt",
     "ssl_min_protocol_version": "TLSv1.2", "password_encryption": "scram-sha-256"},
    {"ssl": "on", "enable_pool_hba": True, "pool_passwd": "pool_passwd",
     "ssl_key": "/var/lib/jelastic/keys/SSL-TLS/server/server.key",
     "ssl_cert": "/var/lib/jelastic/keys/SSL-TLS/server/server.crt"},
    {"port": 5433, "ssl": None},
]

HBA_OPTIONS = {
    "default": dict(),
    "md5-compat": dict(keep_md5_compat=True),
    "cert-pgpool": dict(client_cert_auth=True, no_client_cert_addresses=["10.100.2.17", "10.100.2.18"]),
    "password+cert-11": dict(client_cert_auth=True, client_cert_mode="password+cert", server_major=11,
                             no_client_cert_addresses=["10.0.0.0/8"]),
    "password+cert-17": dict(client_cert_auth=True, client_cert_mode="password+cert", server_major=17),
    # per-role md5 rules for roles still holding md5 secrets (names that need quoting included)
    "md5-roles": dict(md5_roles=["app", "webadmin", "my app", "all", "pgpool"], role_groups={"app": ["staff"]}),
}


@pytest.mark.parametrize("path,flavor", _files(("conf",), "passing"))
@pytest.mark.parametrize("params", CONF_PARAMS, ids=["postgres", "pgpool", "unset"])
def test_conf_corpus_set_params(path, flavor, params):
    original = read(path)
    before = conf.parse(original, path.name)
    changed = conf.set_params(original, params)
    assert conf.set_params(changed, params) == changed, "not idempotent"
    assert conf.revert(changed) == original, "revert is not byte for byte"
    for name, value in params.items():
        got = conf.get(changed, name)
        if value is None:
            assert got is None
        else:
            assert got == conf.unquote(conf.format_value(value))
    # Comments and order kept: removing the edit markers leaves the original lines in order.
    untouched = [e for e in before if e.key not in {n.lower() for n in params}]
    after = [e for e in conf.parse(changed, path.name) if e.key not in {n.lower() for n in params}]
    assert [(e.lineno, e.raw_value) for e in after] == [(e.lineno, e.raw_value) for e in untouched]
    assert changed.startswith(conf.BOM) == original.startswith(conf.BOM)
    if "\n" in original:
        # The added lines use the file's own line ending.
        assert ("\r\n" in original) == changed.endswith("\r\n") or not original.endswith("\n")


@pytest.mark.parametrize("path,flavor", _files(("hba", "pool_hba"), "passing"))
@pytest.mark.parametrize("option_name", sorted(HBA_OPTIONS))
def test_hba_corpus_enable_hostssl(path, flavor, option_name):
    kwargs = dict(HBA_OPTIONS[option_name])
    hba_flavor = hba.PGPOOL if flavor == "pool_hba" else hba.POSTGRESQL
    if hba_flavor == hba.PGPOOL and kwargs.get("client_cert_mode") == "password+cert":
        with pytest.raises(AgentError):
            hba.HbaOptions(flavor=hba_flavor, **kwargs)
        return
    options = hba.HbaOptions(flavor=hba_flavor, **kwargs)
    original = read(path)
    before = hba.rules(original, hba_flavor, path.name)
    enabled = hba.enable_hostssl(original, options)
    assert hba.enable_hostssl(enabled, options) == enabled, "not idempotent"
    assert hba.disable_hostssl(enabled) == original, "disable is not byte for byte"
    after = hba.rules(enabled, hba_flavor, path.name)
    assert hba.plaintext_remote_rules(enabled, hba_flavor) == [
        r for r in after if r.type in ("hostnossl", "hostnogssenc") and r.method != "reject"]
    # Untouched rules keep their text and order.
    kept = [r for r in before if not hba._needs_rewrite(r)]
    assert [r.fields for r in after if not r.managed] == [r.fields for r in kept]
    for rule in after:
        if rule.managed:
            assert rule.type == "hostssl"
            assert rule.method in ("scram-sha-256", "md5", "cert", "trust", "ident", "ldap", "pam",
                                   "radius", "gss", "sspi", "password", "bsd")
            if rule.method == "md5":
                tokens = rule.fields[2].tokens
                per_role = len(tokens) == 1 and tokens[0].text in kwargs.get("md5_roles", ()) and (
                    tokens[0].quoted or tokens[0].text != "all")
                assert kwargs.get("keep_md5_compat") or per_role
    # Untouched lines keep their exact bytes.
    original_lines = original.split("\n")
    for line in enabled.split("\n"):
        if "dbtls-" not in line:
            assert line in original_lines


@pytest.mark.parametrize("path,flavor", _files(("conf",), "failing"))
def test_conf_corpus_failing(path, flavor):
    text = read(path)
    for call in (lambda: conf.parse(text, path.name),
                 lambda: conf.set_params(text, {"ssl": True}, source=path.name)):
        with pytest.raises(AgentError) as info:
            call()
        message = str(info.value)
        assert "\n" not in message and path.name in message


@pytest.mark.parametrize("path,flavor", _files(("hba", "pool_hba"), "failing"))
def test_hba_corpus_failing(path, flavor):
    text = read(path)
    hba_flavor = hba.PGPOOL if flavor == "pool_hba" else hba.POSTGRESQL
    options = hba.HbaOptions(flavor=hba_flavor)
    for call in (lambda: hba.parse(text, hba_flavor, path.name),
                 lambda: hba.enable_hostssl(text, options, source=path.name)):
        with pytest.raises(AgentError) as info:
            call()
        message = str(info.value)
        assert "\n" not in message and path.name in message


def test_corpus_is_not_empty():
    assert len(_files(("conf",), "passing")) >= 20
    assert len(_files(("hba", "pool_hba"), "passing")) >= 15
    assert len(_files(("conf", "hba", "pool_hba"), "failing")) >= 15
