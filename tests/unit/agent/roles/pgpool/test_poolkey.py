"""Which pg_enc the wrapper accepts: only one that reads passwords from a file (-i, Pgpool-II 4.2+)."""

import os

import pytest

from dbtls_agent.errors import AgentError
from dbtls_agent.roles.pgpool import poolkey

HELP_41 = "usage: pg_enc [OPTIONS] <PASSWORD>\n  -k, --key-file=KEY_FILE\n  -m, --update-pass\n"
HELP_43 = HELP_41 + "  -i, --input-file=INPUT_FILE\n"


def _fake_pg_enc(tmp_path, monkeypatch, help_text):
    exe = tmp_path / "pg_enc"
    exe.write_text("#!/bin/sh\ncat <<'EOF'\n" + help_text + "EOF\nexit 1\n")
    exe.chmod(0o755)
    monkeypatch.setenv("PATH", str(tmp_path) + os.pathsep + os.environ.get("PATH", ""))
    return str(exe)


def test_pg_enc_with_input_file_is_used(tmp_path, monkeypatch):
    exe = _fake_pg_enc(tmp_path, monkeypatch, HELP_43)
    assert poolkey.pg_enc_exe() == exe


def test_pg_enc_without_input_file_is_refused_before_any_change(tmp_path, monkeypatch):
    _fake_pg_enc(tmp_path, monkeypatch, HELP_41)
    with pytest.raises(AgentError, match="--backend native"):
        poolkey.pg_enc_exe()
