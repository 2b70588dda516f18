"""Backups, change records and the node lock (node-scripts/dbtls_agent/state.py)."""

import os
import subprocess
import sys
import textwrap

import pytest

from dbtls_agent import state
from dbtls_agent.errors import AgentError


@pytest.fixture
def setup(tmp_path):
    cert_dir = tmp_path / "SSL-TLS"
    conf = tmp_path / "postgresql.conf"
    conf.write_bytes(b"port = 5432\r\n# comment\r\n")
    os.chmod(conf, 0o640)
    return cert_dir, conf


def test_write_backs_up_once_and_restore_is_byte_exact(setup):
    cert_dir, conf = setup
    original = conf.read_bytes()
    changes = state.ChangeSet(str(cert_dir), "postgres")
    assert changes.write(str(conf), b"ssl = on\n") is True
    assert changes.write(str(conf), b"ssl = on\nport = 1\n") is True
    # A new ChangeSet (a later run) still knows the very first original.
    again = state.ChangeSet(str(cert_dir), "postgres")
    assert again.original(str(conf)) == original
    assert again.restore(str(conf)) == "restored"
    assert conf.read_bytes() == original
    assert oct(os.stat(conf).st_mode & 0o777) == oct(0o640)


def test_writing_the_same_bytes_is_not_a_change(setup):
    cert_dir, conf = setup
    changes = state.ChangeSet(str(cert_dir), "postgres")
    assert changes.write(str(conf), conf.read_bytes()) is False


def test_a_foreign_edit_is_detected_and_not_clobbered(setup):
    cert_dir, conf = setup
    changes = state.ChangeSet(str(cert_dir), "postgres")
    changes.write(str(conf), b"ssl = on\n")
    conf.write_bytes(b"ssl = on\nwork_mem = 8MB\n")
    assert changes.restore(str(conf)) == "foreign-edit"
    assert conf.read_bytes() == b"ssl = on\nwork_mem = 8MB\n"


def test_a_file_we_created_is_removed_on_restore(setup):
    cert_dir, _ = setup
    new = cert_dir.parent / "ssl-config.cnf"
    changes = state.ChangeSet(str(cert_dir), "mysql")
    changes.write(str(new), b"[mysqld]\n", mode=0o644)
    assert changes.restore(str(new)) == "removed"
    assert not new.exists()


def test_a_damaged_backup_is_refused(setup):
    cert_dir, conf = setup
    changes = state.ChangeSet(str(cert_dir), "postgres")
    changes.write(str(conf), b"x\n")
    backup_dir = os.path.join(state.state_dir(str(cert_dir)), "backups", "postgres")
    for name in os.listdir(backup_dir):
        with open(os.path.join(backup_dir, name), "wb") as handle:
            handle.write(b"tampered")
    with pytest.raises(AgentError, match="damaged"):
        changes.restore(str(conf))


def test_state_files_are_private(setup):
    cert_dir, conf = setup
    state.ChangeSet(str(cert_dir), "postgres").write(str(conf), b"x\n")
    root = state.state_dir(str(cert_dir))
    assert os.stat(root).st_mode & 0o777 == 0o700
    for dirpath, _, files in os.walk(root):
        for name in files:
            assert os.stat(os.path.join(dirpath, name)).st_mode & 0o077 == 0


def test_a_second_run_waits_then_refuses_clearly(tmp_path):
    cert_dir = str(tmp_path)
    holder = textwrap.dedent(f"""
        import sys, time
        sys.path.insert(0, {os.path.abspath("node-scripts")!r})
        from dbtls_agent.state import NodeLock
        with NodeLock({cert_dir!r}):
            print("locked", flush=True)
            sys.stdin.readline()
    """)
    proc = subprocess.Popen([sys.executable, "-c", holder], stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                            text=True)
    try:
        assert proc.stdout.readline().strip() == "locked"
        with pytest.raises(AgentError, match="still busy"):
            with state.NodeLock(cert_dir, wait_s=0.5):
                pass
    finally:
        proc.stdin.write("\n")
        proc.stdin.flush()
        proc.wait(timeout=10)
    with state.NodeLock(cert_dir, wait_s=0.5):
        pass
