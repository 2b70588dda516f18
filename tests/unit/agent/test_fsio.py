"""Atomic writes, modes and owners: the properties every key and config write relies on."""

import os
import stat

import pytest

from dbtls_agent import fsio
from dbtls_agent.errors import AgentError


def test_atomic_write_sets_mode_and_replaces(tmp_path):
    path = str(tmp_path / "server.key")
    fsio.atomic_write(path, b"one", 0o600)
    assert stat.S_IMODE(os.stat(path).st_mode) == 0o600
    fsio.atomic_write(path, b"two", 0o644)
    assert open(path, "rb").read() == b"two"
    assert stat.S_IMODE(os.stat(path).st_mode) == 0o644
    assert os.listdir(str(tmp_path)) == ["server.key"]  # no temp files left


def test_atomic_write_owner(tmp_path):
    if os.geteuid() != 0:
        pytest.skip("chown needs root")
    path = str(tmp_path / "k")
    fsio.atomic_write(path, b"x", 0o600, fsio.resolve_owner("nobody"))
    assert os.stat(path).st_uid == 65534


def test_atomic_write_missing_dir(tmp_path):
    with pytest.raises(AgentError, match="cannot write"):
        fsio.atomic_write(str(tmp_path / "nope" / "f"), b"x")


def test_atomic_write_failure_keeps_old_content(tmp_path, monkeypatch):
    path = str(tmp_path / "f")
    fsio.atomic_write(path, b"old")

    def broken_rename(src, dst, **kw):
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(os, "rename", broken_rename)
    with pytest.raises(AgentError, match="No space left"):
        fsio.atomic_write(path, b"new")
    monkeypatch.undo()
    assert open(path, "rb").read() == b"old"
    assert os.listdir(str(tmp_path)) == ["f"]


def test_resolve_owner_unknown_user():
    with pytest.raises(AgentError, match="user 'no-such-user-xyz' does not exist"):
        fsio.resolve_owner("no-such-user-xyz")
    with pytest.raises(AgentError, match="group 'no-such-group-xyz' does not exist"):
        fsio.resolve_owner("root", "no-such-group-xyz")
    assert fsio.resolve_owner(None) is None
    assert fsio.resolve_owner("root") == (0, 0)


def test_read_helpers(tmp_path):
    assert fsio.read_bytes(str(tmp_path / "missing")) is None
    assert fsio.read_bytes(str(tmp_path / "missing" / "deeper")) is None
    (tmp_path / "t").write_bytes(b"caf\xc3\xa9 \xff")
    assert fsio.read_text(str(tmp_path / "t")) == "caf\u00e9 \ufffd"


def test_ensure_dir_enforces_mode(tmp_path):
    path = str(tmp_path / "a" / "b")
    os.makedirs(path, 0o755)
    fsio.ensure_dir(path, 0o700)
    assert stat.S_IMODE(os.stat(path).st_mode) == 0o700


def test_check_writable_dir(tmp_path):
    fsio.check_writable_dir(str(tmp_path / "new" / "deeper"))
    (tmp_path / "file").write_text("x")
    with pytest.raises(AgentError, match="is not a directory"):
        fsio.check_writable_dir(str(tmp_path / "file" / "sub"))
