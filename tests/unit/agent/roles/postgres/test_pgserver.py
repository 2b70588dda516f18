"""pgserver's pre-reload check: which pg_hba_file_rules rows really stop pg_hba.conf from loading."""

import pytest

from dbtls_agent.roles.postgres import server

WARNING = "hostssl record cannot match because SSL is disabled"


@pytest.mark.parametrize("kind, method, error, ssl, benign", [
    ("hostssl", "scram-sha-256", WARNING, "off", True),         # stage all: ssl still off in this session
    ("hostssl", "cert", WARNING, "off", True),
    ("hostssl", "scram-sha-256", WARNING, "on", False),          # cannot happen with ssl on: keep it
    ("hostssl", "", "invalid rule", "off", False),               # NULL auth_method: broken row
    ("hostssl", "cert", 'clientcert can not be set to "verify-ca" when using "cert" authentication', "off", False),
    ("host", "md5", "clientcert can only be configured for \"hostssl\" rows", "off", False),
    ("hostssl", "md5", "authentication method \"md6\" not recognized", "off", False),
])
def test_only_the_ssl_off_warning_is_benign(kind, method, error, ssl, benign):
    assert server.is_ssl_off_warning(kind, method, error, ssl) is benign


def test_hba_errors_filters_the_warning_and_keeps_real_errors(monkeypatch):
    rows = [["96", WARNING, "hostssl", "scram-sha-256", "off"],
            ["97", "invalid rule", "hostssl", "", "off"]]
    monkeypatch.setattr(server, "_sql", lambda query: rows)
    assert server.hba_errors(15) == ["pg_hba.conf line 97: invalid rule"]
    assert server.hba_errors(9) == []
