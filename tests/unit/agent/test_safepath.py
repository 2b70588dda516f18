"""safepath and the fsio functions built on it: nothing a service account plants is followed.

A folder owned by another account stands for /etc/pgpool-II or client/; it is made with a real
chown when the tests run as root, else by giving the folder group write access (which makes it
unprotected as well: the group could rename its entries).
"""

import os
import stat

import pytest

from dbtls_agent import fsio, safepath
from dbtls_agent.errors import AgentError

NOBODY = 65534


def _untrusted_dir(path):
    """A folder someone else may change (a service account's folder)."""
    path.mkdir()
    if os.geteuid() == 0:
        os.chown(str(path), NOBODY, NOBODY)
    else:
        path.chmod(0o770)
    return path


def test_protected_rules():
    def st(uid, mode):
        return os.stat_result((stat.S_IFDIR | mode, 0, 0, 2, uid, 0, 0, 0, 0, 0))
    me = os.geteuid()
    assert safepath.protected(st(me, 0o755))
    assert safepath.protected(st(me, 0o1777))  # sticky: others cannot rename our entries
    assert not safepath.protected(st(me, 0o775))
    assert not safepath.protected(st(NOBODY if me != NOBODY else 1, 0o700))


def test_link_in_a_service_folder_is_refused(tmp_path):
    victim = tmp_path / "victim"
    victim.write_bytes(b"secret")
    victim.chmod(0o644)
    folder = _untrusted_dir(tmp_path / "pgpool")
    os.symlink(str(victim), str(folder / "pool_passwd"))
    for call in (lambda p: fsio.read_bytes(p), lambda p: fsio.chmod(p, 0o600), lambda p: fsio.read_with_stat(p)):
        with pytest.raises(AgentError, match="symbolic link"):
            call(str(folder / "pool_passwd"))
    assert stat.S_IMODE(victim.stat().st_mode) == 0o644
    fsio.atomic_write(str(folder / "pool_passwd"), b"new", 0o600)  # replaces the link, never writes through
    assert victim.read_bytes() == b"secret" and not os.path.islink(str(folder / "pool_passwd"))


def test_link_as_a_folder_in_a_service_folder_is_refused(tmp_path):
    """The user-cert case: client/users replaced by a link to a root folder holding cron.d."""
    victim = tmp_path / "etc"
    (victim / "cron.d").mkdir(parents=True)
    before = (victim / "cron.d").stat()
    client = _untrusted_dir(tmp_path / "client")
    os.symlink(str(victim), str(client / "users"))
    with pytest.raises(AgentError, match="symbolic link"):
        fsio.ensure_dir(str(client / "users" / "cron.d"), 0o700)
    with pytest.raises(AgentError, match="symbolic link"):
        fsio.atomic_write(str(client / "users" / "cron.d" / "f"), b"x")
    with pytest.raises(AgentError, match="symbolic link"):
        fsio.read_bytes(str(client / "users" / "cron.d" / "f"))
    after = (victim / "cron.d").stat()
    assert (after.st_mode, after.st_uid, after.st_gid) == (before.st_mode, before.st_uid, before.st_gid)
    assert os.listdir(str(victim / "cron.d")) == []


def test_links_in_protected_folders_are_followed(tmp_path):
    """The platform's own links (/var/run -> /run, /etc/alternatives) keep working."""
    (tmp_path / "real").mkdir()
    (tmp_path / "real" / "my.cnf").write_bytes(b"[mysqld]\n")
    os.symlink("real", str(tmp_path / "alias"))
    os.symlink(str(tmp_path / "real" / "my.cnf"), str(tmp_path / "my.cnf"))
    assert fsio.read_bytes(str(tmp_path / "alias" / "my.cnf")) == b"[mysqld]\n"
    assert fsio.read_bytes(str(tmp_path / "my.cnf")) == b"[mysqld]\n"
    fsio.ensure_dir(str(tmp_path / "alias" / "sub"), 0o700)
    assert (tmp_path / "real" / "sub").is_dir()


def test_fifo_and_hard_link_are_refused(tmp_path):
    folder = _untrusted_dir(tmp_path / "svc")
    os.mkfifo(str(folder / "pool_passwd"))
    with pytest.raises(AgentError, match="not a regular file"):
        fsio.read_bytes(str(folder / "pool_passwd"))  # returns at once: O_NONBLOCK
    assert fsio.read_from(str(folder / "pool_passwd"), 0) is None
    os.unlink(str(folder / "pool_passwd"))
    (tmp_path / "victim").write_bytes(b"root file")
    try:
        os.link(str(tmp_path / "victim"), str(folder / "pool_passwd"))
    except OSError:
        pytest.skip("hard links across owners are not allowed here (protected_hardlinks)")
    with pytest.raises(AgentError, match="hard links"):
        fsio.read_bytes(str(folder / "pool_passwd"))


def test_ensure_dir_sets_owner_and_mode_on_the_opened_folder(tmp_path):
    client = _untrusted_dir(tmp_path / "client")
    target = client / "users" / "alice"
    fsio.ensure_dir(str(target), 0o700, (os.geteuid(), os.getegid()))
    assert stat.S_IMODE(target.stat().st_mode) == 0o700
    assert (client / "users").is_dir() and not (client / "users").is_symlink()


def test_remove_deletes_the_link_not_its_target(tmp_path):
    (tmp_path / "target").write_bytes(b"keep")
    os.symlink(str(tmp_path / "target"), str(tmp_path / "link"))
    assert fsio.remove(str(tmp_path / "link")) is True
    assert (tmp_path / "target").read_bytes() == b"keep"
    assert fsio.remove(str(tmp_path / "link")) is False


def test_owned_directory_demands_a_protected_chain(tmp_path):
    outer = _untrusted_dir(tmp_path / "outer")
    (outer / "conf").mkdir()
    with pytest.raises(AgentError, match="lies below"):
        safepath.owned_directory(str(outer / "conf"), [], "the folder")
    with safepath.owned_directory(str(tmp_path), [], "the folder") as directory:
        assert directory.path == str(tmp_path)
    with pytest.raises(AgentError, match="cannot open"):
        safepath.owned_directory(str(tmp_path / "missing"), [], "the folder")


def test_remove_tree_never_follows_a_link_inside(tmp_path):
    keep = tmp_path / "keep"
    keep.mkdir()
    (keep / "precious").write_bytes(b"x")
    server = _untrusted_dir(tmp_path / "server")
    (server / "sub").mkdir()
    (server / "sub" / "server.key").write_bytes(b"k")
    os.symlink(str(keep), str(server / "link"))
    assert fsio.remove_tree(str(server)) is True
    assert not server.exists() and (keep / "precious").read_bytes() == b"x"
    assert fsio.remove_tree(str(server)) is False
