"""Role names and the --password-file rules (never argv; a root-only file that is deleted after reading)."""

import argparse
import os

import pytest

from dbtls_agent.errors import AgentError
from dbtls_agent.passwords import secretinput


@pytest.mark.parametrize("name", ["app", "app_2", "_x", "my-app.v2", "A" * 63])
def test_good_role_names(name):
    assert secretinput.check_role_name(name) == name


@pytest.mark.parametrize("name", ["", "2app", "a b", "a;b", "a'b", 'a"b', "a\nb", "A" * 64, "-x", "ärger", "webadmin",
                                  "replication"])
def test_bad_role_names_get_one_line(name):
    with pytest.raises(AgentError) as info:
        secretinput.check_role_name(name)
    assert "\n" not in str(info.value)


def write(path, data, mode=0o600):
    path.write_bytes(data)
    os.chmod(str(path), mode)
    return str(path)


def test_password_file_is_read_and_deleted(tmp_path):
    os.chmod(str(tmp_path), 0o700)
    path = write(tmp_path / "pw", b"s3cret: with spaces\n")
    assert secretinput.read_password_file(path) == "s3cret: with spaces"
    assert not os.path.exists(path)


@pytest.mark.parametrize("mode", [0o640, 0o604, 0o660])
def test_readable_by_others_is_refused_and_left_alone(tmp_path, mode):
    os.chmod(str(tmp_path), 0o700)
    path = write(tmp_path / "pw", b"x\n", mode)
    with pytest.raises(AgentError, match="chmod 600"):
        secretinput.read_password_file(path)
    assert os.path.exists(path)


def test_symlink_hardlink_and_writable_directory_are_refused(tmp_path):
    os.chmod(str(tmp_path), 0o700)
    target = write(tmp_path / "target", b"x\n")
    os.symlink(target, str(tmp_path / "link"))
    with pytest.raises(AgentError, match="cannot open"):
        secretinput.read_password_file(str(tmp_path / "link"))
    os.link(target, str(tmp_path / "hard"))
    with pytest.raises(AgentError, match="hard links"):
        secretinput.read_password_file(target)
    shared = tmp_path / "shared"
    shared.mkdir()
    os.chmod(str(shared), 0o777)
    with pytest.raises(AgentError, match="directory"):
        secretinput.read_password_file(write(shared / "pw", b"x\n"))
    os.chmod(str(shared), 0o1777)  # sticky, like /tmp: nobody else can replace root's file
    assert secretinput.read_password_file(str(shared / "pw")) == "x"


@pytest.mark.parametrize("data,why", [(b"", "empty"), (b"\n", "empty"), (b"a\nb\n", "several lines"),
                                      (b"\xff\xfe", "UTF-8"), (b"x" * 2000, "longer")])
def test_bad_content(tmp_path, data, why):
    os.chmod(str(tmp_path), 0o700)
    with pytest.raises(AgentError, match=why):
        secretinput.read_password_file(write(tmp_path / "pw", data))


def test_exactly_one_source(tmp_path):
    args = argparse.Namespace(password_file=None, passwords_sealed=False, cert_dir=str(tmp_path))
    with pytest.raises(AgentError, match="--passwords-sealed"):
        secretinput.password_for(args, "app")
    args = argparse.Namespace(password_file="/x", passwords_sealed=True, cert_dir=str(tmp_path))
    with pytest.raises(AgentError, match="pass one"):
        secretinput.password_for(args, "app")
