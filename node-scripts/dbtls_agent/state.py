"""Backups, change records and the node lock: what makes every config change undoable.

The agent edits live servers' configuration. Before the first change to a file its original
bytes are saved once under the state directory (inside the certificate folder, 0700); every later
enable keeps that first original, so ``disable`` restores the file as it was before the add-on,
byte for byte. A record of what we last wrote (its SHA-256) tells ``disable`` whether somebody
else edited the file since: if so, the caller applies the inverse edit instead of clobbering it.

One lock per node serialises agent runs (a button pressed twice must not interleave two runs).
"""

import errno
import fcntl
import hashlib
import json
import os
import sys
import time
from typing import Any, Dict, Iterator, List, Optional, Tuple

from dbtls_agent import fsio
from dbtls_agent.errors import AgentError

STATE_DIR_NAME = ".dbtls-state"
#: The platform's certificate folder; the state directory lives inside it.
DEFAULT_CERT_DIR = "/var/lib/jelastic/keys/SSL-TLS"
LOCK_WAIT_S = 300.0


class StateLayout(object):
    """Every file and folder under ``<cert-dir>/.dbtls-state/`` (0700, root's), named in one place.

    Per role: ``<role>.changes.json`` and ``backups/<role>/`` (:class:`ChangeSet`), the run's
    ``<role>.journal.json``, ``<role>.extra.json`` (postgres: ALTER SYSTEM values replaced) and
    ``<role>.role.json`` (mysql family: values before enable; also ``mysql-users`` for
    ``user-cert`` and ``proxysql-drain`` for the rows a drain took). Node-wide: the lock, the install
    options, the CA's name policy, the replicas seen streaming, the users let through Pgpool-II,
    pool_hba's last options, the sealed-box recipient key and the MySQL server's last served files.
    """

    def __init__(self, cert_dir: str) -> None:
        self.root = os.path.join(cert_dir, STATE_DIR_NAME)

    def _at(self, name: str) -> str:
        return os.path.join(self.root, name)

    def changes(self, role: str) -> str:
        return self._at("{}.changes.json".format(role))

    def backups(self, role: str) -> str:
        return os.path.join(self.root, "backups", role)

    def journal(self, role: str) -> str:
        return self._at("{}.journal.json".format(role))

    def extra(self, role: str) -> str:
        return self._at("{}.extra.json".format(role))

    def role_record(self, role: str) -> str:
        return self._at("{}.role.json".format(role))

    @property
    def lock(self) -> str:
        return self._at("lock")

    @property
    def options(self) -> str:
        return self._at("options.json")

    @property
    def ca_policy(self) -> str:
        return self._at("ca-policy.json")

    @property
    def replication_seen(self) -> str:
        return self._at("replication-seen.json")

    @property
    def pgpool_allowed(self) -> str:
        return self._at("pgpool-allowed.json")

    @property
    def pgpool_allowed_stash(self) -> str:
        return self._at("pgpool-allowed.stash.json")

    @property
    def pgpool_hba(self) -> str:
        return self._at("pgpool-hba.json")

    @property
    def seal_dir(self) -> str:
        return self._at("seal")

    @property
    def renew_token(self) -> str:
        """The token the platform's renewal script checks (0600; never printed, never in argv)."""
        return self._at("renew-token")

    @property
    def renew_settings(self) -> str:
        """The renewal script's URL (``renew.json``); not secret."""
        return self._at("renew.json")

    @property
    def mysql_served(self) -> str:
        """Copy of the server cert/key/root last verified as served (rolls back a failed swap)."""
        return self._at("mysql-served")


def layout(cert_dir: str) -> StateLayout:
    return StateLayout(cert_dir)


def state_dir(cert_dir: str) -> str:
    return StateLayout(cert_dir).root


def sha256(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def _key(path: str) -> str:
    """Backup file name for ``path``: readable prefix plus a hash so distinct paths never collide."""
    base = os.path.basename(path) or "root"
    return "{}.{}".format(base, sha256(os.path.abspath(path).encode())[:16])


class ChangeSet(object):
    """The files one role's enable changed, with their originals; persisted as JSON.

    Keys of the record are absolute paths; each value holds ``existed``, ``mode``, ``uid``,
    ``gid``, ``original_sha256``, ``backup`` (file name under backups/) and ``written_sha256``.
    """

    def __init__(self, cert_dir: str, role: str) -> None:
        names = StateLayout(cert_dir)
        self.root = names.root
        self.role = role
        self.backups = names.backups(role)
        self.record_path = names.changes(role)
        self.entries = self._load()  # type: Dict[str, Dict[str, Any]]

    def _load(self) -> Dict[str, Dict[str, Any]]:
        text = fsio.read_text(self.record_path)
        if text is None:
            return {}
        try:
            data = json.loads(text)
        except ValueError:
            raise AgentError("state file {} is corrupt; restore it or remove it to start over".format(
                self.record_path)) from None
        return data.get("files", {})

    def _save(self) -> None:
        fsio.ensure_dir(self.root, 0o700)
        body = json.dumps({"role": self.role, "files": self.entries}, indent=1, sort_keys=True)
        fsio.atomic_write(self.record_path, body.encode(), 0o600)

    def backup(self, path: str) -> None:
        """Save the original of ``path`` once; later calls keep the very first original."""
        path = os.path.abspath(path)
        if path in self.entries:
            return
        data, st = fsio.read_with_stat(path)
        entry = {"existed": data is not None, "backup": _key(path), "written_sha256": None}
        if data is not None and st is not None:
            entry.update({"mode": st.st_mode & 0o7777, "uid": st.st_uid, "gid": st.st_gid,
                          "original_sha256": sha256(data)})
            fsio.ensure_dir(self.backups, 0o700)
            fsio.atomic_write(os.path.join(self.backups, entry["backup"]), data, 0o600)
        self.entries[path] = entry
        self._save()

    def write(self, path: str, data: bytes, mode: Optional[int] = None,
              owner: Optional[fsio.Ids] = None) -> bool:
        """Back up, then atomically replace ``path``; keeps the file's mode and owner by default.

        Returns False (and writes nothing) when the file already holds ``data``.
        """
        path = os.path.abspath(path)
        current = fsio.read_bytes(path)
        self.backup(path)
        if current == data:
            self._mark_written(path, data)
            return False
        entry = self.entries[path]
        if mode is None:
            mode = entry.get("mode", 0o600)
        if owner is None and entry.get("existed"):
            owner = (entry["uid"], entry["gid"])
        fsio.atomic_write(path, data, mode, owner)
        self._mark_written(path, data)
        return True

    def _mark_written(self, path: str, data: bytes) -> None:
        if self.entries[path].get("written_sha256") != sha256(data):
            self.entries[path]["written_sha256"] = sha256(data)
            self._save()

    def original(self, path: str) -> Optional[bytes]:
        """The bytes ``path`` had before the add-on touched it (None if it did not exist)."""
        entry = self.entries.get(os.path.abspath(path))
        if entry is None or not entry["existed"]:
            return None
        data = fsio.read_bytes(os.path.join(self.backups, entry["backup"]))
        if data is None or sha256(data) != entry["original_sha256"]:
            raise AgentError("backup of {} is missing or damaged in {}".format(path, self.backups))
        return data

    def changed_since_written(self, path: str) -> bool:
        """True when someone else edited ``path`` after our last write."""
        entry = self.entries.get(os.path.abspath(path))
        if entry is None:
            return False
        current = fsio.read_bytes(os.path.abspath(path))
        return current is not None and sha256(current) != entry.get("written_sha256")

    def restore(self, path: str) -> str:
        """Put back the original bytes of ``path`` (or remove a file we created).

        Returns "restored", "removed", "unchanged" or "foreign-edit"; with "foreign-edit" nothing
        is written and the caller applies the inverse edit to the current text instead.
        """
        path = os.path.abspath(path)
        entry = self.entries.get(path)
        if entry is None:
            return "unchanged"
        if self.changed_since_written(path):
            return "foreign-edit"
        if not entry["existed"]:
            fsio.remove(path)
            return "removed"
        data = self.original(path)
        assert data is not None
        fsio.atomic_write(path, data, entry["mode"], (entry["uid"], entry["gid"]))
        return "restored"

    def forget(self, path: str) -> None:
        """Drop the record and backup of ``path`` once it is restored."""
        path = os.path.abspath(path)
        entry = self.entries.pop(path, None)
        if entry is None:
            return
        try:
            os.unlink(os.path.join(self.backups, entry["backup"]))
        except OSError:
            pass
        self._save()

    def undo(self, steps: List[Tuple[str, Optional[bytes]]], default_mode: int = 0o644) -> None:
        """Put files back after a failed run: ``steps`` lists (path, bytes before this run, or None
        for a file the run created), oldest first; they are undone newest first. A file that is
        back to its original bytes (or gone again) is forgotten, so disable has nothing to do."""
        for path, data in reversed(steps):
            entry = self.entries.get(os.path.abspath(path))
            if data is None:
                try:
                    fsio.remove(path)
                except AgentError:
                    pass
            else:
                mode = entry.get("mode", default_mode) if entry else default_mode
                owner = (entry["uid"], entry["gid"]) if entry and "uid" in entry else None
                fsio.atomic_write(path, data, mode, owner)
            if entry is not None and (data is None or sha256(data) == entry.get("original_sha256")):
                self.forget(path)

    def paths(self) -> Iterator[str]:
        return iter(sorted(self.entries))


class NodeLock(object):
    """An exclusive ``flock`` on the node's state directory for the length of one agent run.

    A second run waits (saying so on stderr) up to ``wait_s`` seconds, then refuses clearly;
    the kernel releases the lock if the holder dies, so a killed run never leaves it stuck.
    """

    def __init__(self, cert_dir: str, wait_s: float = LOCK_WAIT_S) -> None:
        self.path = StateLayout(cert_dir).lock
        self.wait_s = wait_s
        self.fd = -1

    def __enter__(self) -> "NodeLock":
        fsio.ensure_dir(os.path.dirname(self.path), 0o700)
        self.fd = os.open(self.path, os.O_RDWR | os.O_CREAT, 0o600)
        deadline = time.monotonic() + self.wait_s
        told = False
        while True:
            try:
                fcntl.flock(self.fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
                return self
            except OSError as exc:
                if exc.errno not in (errno.EAGAIN, errno.EACCES):
                    raise
            if not told:
                sys.stderr.write("dbtls-agent: another dbtls-agent run holds the node lock; waiting\n")
                told = True
            if time.monotonic() >= deadline:
                os.close(self.fd)
                raise AgentError("another dbtls-agent run is still busy on this node after {:.0f}s; "
                                 "try again when it has finished".format(self.wait_s))
            time.sleep(0.2)

    def __exit__(self, *exc_info: Any) -> None:
        if self.fd >= 0:
            fcntl.flock(self.fd, fcntl.LOCK_UN)
            os.close(self.fd)
            self.fd = -1


class RoleState(object):
    """Small JSON record of one role's values before enable (``<cert_dir>/.dbtls-state/<role>.role.json``)."""

    def __init__(self, cert_dir_path: str, role: str) -> None:
        self.path = layout(cert_dir_path).role_record(role)
        text = fsio.read_text(self.path)
        try:
            self.data = json.loads(text) if text else {}  # type: Dict[str, Any]
        except ValueError:
            raise AgentError("state file {} is corrupt; remove it to start over".format(self.path)) from None

    def remember(self, key: str, value: Any) -> None:
        """Record ``value`` once: the first enable's "before" must survive later runs."""
        if key not in self.data:
            self.data[key] = value
            self.save()

    def set(self, key: str, value: Any) -> None:
        self.data[key] = value
        self.save()

    def get(self, key: str, default: Any = None) -> Any:
        return self.data.get(key, default)

    def pop(self, key: str) -> Any:
        value = self.data.pop(key, None)
        self.save()
        return value

    def save(self) -> None:
        fsio.ensure_dir(os.path.dirname(self.path), 0o700)
        fsio.atomic_write(self.path, json.dumps(self.data, indent=1, sort_keys=True).encode(), 0o600)

    def remove(self) -> None:
        try:
            os.unlink(self.path)
        except OSError:
            pass
        self.data = {}
