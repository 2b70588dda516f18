"""``pool-passwd allow --user U``: let one database user log in through this Pgpool-II node, and prove it.

The second half of letting a user through Pgpool-II with SCRAM: ``role set-password`` on the
primary first (the role's secret becomes SCRAM), then this on every Pgpool-II node:

1. the user's AES entry in pool_passwd (:func:`set_password`, what ``pg_enc -m``
   writes; the password comes sealed on stdin or from a root-only file, never from argv);
2. pool_hba.conf's managed rules rebuilt for the new pool_passwd (:mod:`.hba`): an md5 rule the
   user had for an md5 entry is dropped, the general ``scram-sha-256`` rule lets it in now;
3. Pgpool-II reloaded (restarted only if its key file had to be created);
4. a real login as that user through this node: ``psql`` to the node's own host name with
   ``sslmode=verify-full`` and ``sslrootcert=<cert-dir>/server/root.crt``. If it fails, pool_passwd
   and pool_hba.conf are put back as they were before this run and the command fails.

Users allowed this way are remembered (``pgpool-allowed.json`` in the state directory, names only):
``disable --role pgpool`` restores pool_passwd byte for byte and would drop their entries, so it puts
them back afterwards (AES, with the node's key) and they keep logging in after uninstall.
"""

import json
import os
import time
from typing import Any, Dict, List, Optional

from dbtls_agent import fsio, nodeos, state
from dbtls_agent.errors import AgentError
from dbtls_agent.roles.pgpool import facts, hba, poolkey, poolpasswd
from dbtls_agent.roles.postgres import apply, client
from dbtls_agent.roles.postgres.server import processes

LOGIN_WAIT_S = 30.0


def allowed_users(cert_dir: str) -> List[str]:
    try:
        return sorted(json.loads(fsio.read_text(state.layout(cert_dir).pgpool_allowed) or "[]"))
    except ValueError:
        return []


def _remember(cert_dir: str, user: str) -> None:
    users = sorted(set(allowed_users(cert_dir)) | {user})
    path = state.layout(cert_dir).pgpool_allowed
    fsio.ensure_dir(os.path.dirname(path), 0o700)
    fsio.atomic_write(path, json.dumps(users).encode(), 0o600)


def set_password(cert_dir: str, conf_path: str, user: str, password: str, backend: str) -> Dict[str, Any]:
    """Write USER's AES entry; reload Pgpool (restart if its key had to be created)."""
    conf_text = fsio.read_text(conf_path)
    if conf_text is None:
        raise AgentError("{} does not exist".format(conf_path))
    passwd_path = poolkey.pool_passwd_path(conf_path, conf_text)
    if backend == "pg_enc":
        poolkey.pg_enc_exe()  # refuse an old pg_enc before anything changes
    cs = state.ChangeSet(cert_dir, "pgpool")
    before = fsio.read_bytes(passwd_path)
    key, old_key, created = poolkey.ensure_key(cs)
    if backend == "pg_enc":
        cs.backup(passwd_path)
        poolkey.pg_enc_set(conf_path, poolkey.key_path(), {user: password})
        if old_key is not None:
            text, _users = poolkey.set_entries(fsio.read_text(passwd_path) or "", {}, key, old_key)
            fsio.atomic_write(passwd_path, text.encode("utf-8", "surrogateescape"), 0o600)
        data = fsio.read_bytes(passwd_path) or b""
        cs.write(passwd_path, data, 0o600, fsio.resolve_owner(poolkey.SERVICE_USER))
        fsio.chmod(passwd_path, 0o600)  # pg_enc creates the file with the umask (0644); never via a link
    else:
        text = (before or b"").decode("utf-8", "surrogateescape")
        new, _users = poolkey.set_entries(text, {user: password}, key, old_key)
        cs.write(passwd_path, new.encode("utf-8", "surrogateescape"), 0o600,
                 fsio.resolve_owner(poolkey.SERVICE_USER))
    changed = fsio.read_bytes(passwd_path) != before or created
    action = "none"
    if changed and processes("pgpool"):
        action = "restart" if created else "reload"
        nodeos.service(action)
    entry = poolpasswd.get_entry(fsio.read_text(passwd_path) or "", user)
    if entry is None or poolpasswd.decrypt_password(entry.secret, key) != password:
        raise AgentError("the pool_passwd entry for {} does not decrypt back to the given password".format(user))
    return {"user": user, "changed": changed, "backend": backend, "pool_passwd": passwd_path,
            "action": action, "key_file_created": created}


def prove_login(cert_dir: str, user: str, password: str, port: int, wait_s: float = LOGIN_WAIT_S) -> Dict[str, Any]:
    """Log in as ``user`` through the local Pgpool-II by its host name, verify-full against root.crt.

    Retries until ``wait_s``: Pgpool-II applies a reload in the background.
    """
    host = apply.own_host()
    root = os.path.join(cert_dir, "server", "root.crt")
    tls = os.path.isfile(root)
    extra = "sslmode=verify-full sslrootcert={}".format(root) if tls else "sslmode=prefer"
    sql = "SELECT current_user, coalesce((SELECT ssl::text FROM pg_stat_ssl WHERE pid = pg_backend_pid()), '')"
    deadline = time.monotonic() + wait_s
    while True:
        try:
            rows = client.psql(sql, os_user="root", host=host, port=port, db_user=user, password=password,
                                 extra_conninfo=extra, timeout=20)
            return {"ok": rows[0][0] == user, "host": host, "port": port,
                    "sslmode": "verify-full" if tls else "prefer", "backend_ssl": rows[0][1] == "true"}
        except AgentError as exc:
            if time.monotonic() >= deadline:
                return {"ok": False, "host": host, "port": port, "sslmode": "verify-full" if tls else "prefer",
                        "error": str(exc)}
        time.sleep(0.5)


def allow(cert_dir: str, conf_path: str, user: str, password: str) -> Dict[str, Any]:
    info = facts.detect()
    if info is None or not os.path.isfile(conf_path):
        raise AgentError("no Pgpool-II on this node ({} is missing)".format(conf_path))
    if len(password.encode("utf-8")) > poolpasswd.MAX_AES_PASSWORD_BYTES:
        raise AgentError("the password is longer than {} bytes, which Pgpool-II cannot read back from an AES entry; "
                         "choose a shorter one".format(poolpasswd.MAX_AES_PASSWORD_BYTES))
    conf_text = fsio.read_text(conf_path) or ""
    passwd_path = poolkey.pool_passwd_path(conf_path, conf_text)
    hba_path = info["hba_file"]
    passwd_before = fsio.read_bytes(passwd_path)
    hba_before = fsio.read_bytes(hba_path)
    result = set_password(cert_dir, conf_path, user, password, "native")
    cs = state.ChangeSet(cert_dir, "pgpool")
    hba_text = (hba_before or b"").decode("utf-8", "surrogateescape")
    new_hba = hba.refreshed(hba_text, fsio.read_text(passwd_path) or "", cert_dir, hba_path)
    result["pool_hba_changed"] = new_hba != hba_text
    if result["pool_hba_changed"]:
        cs.write(hba_path, new_hba.encode("utf-8", "surrogateescape"))
        if info["running"] and result["action"] == "none":
            result["action"] = "reload"
        if info["running"]:
            nodeos.service("reload")
    _remember(cert_dir, user)
    result["login"] = prove_login(cert_dir, user, password, int(info.get("port") or 5432)) if info["running"] else \
        {"ok": False, "error": "Pgpool-II is not running on this node"}
    if not result["login"]["ok"]:
        for path, data in ((passwd_path, passwd_before), (hba_path, hba_before)):
            if data is not None and fsio.read_bytes(path) != data:
                cs.write(path, data)
        if info["running"]:
            try:
                nodeos.service("reload")
            except AgentError:
                pass
        raise AgentError("the login as {} through {}:{} failed ({}); pool_passwd and pool_hba.conf were put back".format(
            user, result["login"]["host"], result["login"]["port"], result["login"].get("error", "wrong user")))
    return result


# --- keeping allowed users through disable ------------------------------------------------------


def stash_before_disable(cert_dir: str, passwd_path: Optional[str]) -> None:
    """Before pool_passwd is restored: keep the allowed users' AES entries and the key that opens
    them (root-only state directory; the same secrets pool_passwd and the key file hold)."""
    users = allowed_users(cert_dir)
    stash_path = state.layout(cert_dir).pgpool_allowed_stash
    if not users or not passwd_path or os.path.exists(stash_path):
        return  # nothing to keep, or an interrupted disable already stashed them
    text = fsio.read_text(passwd_path) or ""
    key = fsio.read_bytes(poolkey.key_path())
    entries = {}
    for user in users:
        entry = poolpasswd.get_entry(text, user)
        if entry is not None and entry.kind == poolpasswd.AES:
            entries[user] = entry.secret
    if entries and key:
        fsio.atomic_write(stash_path, json.dumps({"entries": entries, "key": key.decode("ascii", "replace")}).encode(),
                          0o600)


def restore_after_disable(cert_dir: str, passwd_path: Optional[str], say: Any) -> List[str]:
    """After pool_passwd is restored: the allowed users' entries again, encrypted with the key the
    node has now (the restored one, whatever it is: other restored AES entries depend on it), or a
    new random key when the node had none before the add-on. Returns the users kept."""
    stash_path = state.layout(cert_dir).pgpool_allowed_stash
    stash = json.loads(fsio.read_text(stash_path) or "{}") if os.path.exists(stash_path) else {}
    kept = []
    if stash.get("entries") and passwd_path:
        old_key = poolpasswd.key_from_file_text(stash["key"])
        current = fsio.read_bytes(poolkey.key_path())
        if current is None:  # the node had no key before the add-on: Pgpool-II needs one for AES entries
            path = poolkey.key_path()
            new_key = poolpasswd.generate_pgpool_key()
            fsio.atomic_write(path, (new_key + "\n").encode("ascii"), 0o600, fsio.resolve_owner(poolkey.SERVICE_USER))
            say("{} was kept (a new random key) so that the users allowed through Pgpool-II keep logging in".format(path))
            current = (new_key + "\n").encode("ascii")
        key = poolpasswd.key_from_file_text(current)
        passwd_bytes = fsio.read_bytes(passwd_path)
        text = (passwd_bytes or b"").decode("utf-8", "surrogateescape")
        for user, secret in sorted(stash["entries"].items()):
            text = poolpasswd.set_entry(text, user, poolpasswd.encrypt_password(poolpasswd.decrypt_password(secret, old_key), key))
            kept.append(user)
        owner = fsio.resolve_owner(poolkey.SERVICE_USER)
        fsio.atomic_write(passwd_path, text.encode("utf-8", "surrogateescape"), 0o600, owner)
        say("pool_passwd keeps the entries of the users allowed through Pgpool-II: {}".format(", ".join(kept)))
    names = state.layout(cert_dir)
    for path in (names.pgpool_allowed_stash, names.pgpool_allowed):
        try:
            os.unlink(path)
        except OSError:
            pass
    return kept
