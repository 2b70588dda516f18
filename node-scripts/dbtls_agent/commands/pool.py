"""``pool-passwd set USER``: the seed's ``pg_enc -m -f pgpool.conf -u USER PASSWORD`` without argv secrets.

The password is read from stdin (one line; a trailing newline is dropped). The entry is recorded in
the pgpool role's change set, so ``disable --role pgpool`` restores pool_passwd as it was.
"""

import argparse
import sys
from typing import Any, Dict

from dbtls_agent import fsio, state
from dbtls_agent.cli import DEFAULT_CERT_DIR, print_json
from dbtls_agent.errors import AgentError
from dbtls_agent.roles import common
from dbtls_agent.roles.pgpool import poolkey, poolpasswd
from dbtls_agent.roles.postgres.server import processes


def _read_password() -> str:
    data = sys.stdin.buffer.read().decode("utf-8")
    if data.endswith("\n"):
        data = data[:-1]
        if data.endswith("\r"):
            data = data[:-1]
    if not data:
        raise AgentError("no password on stdin")
    if "\n" in data:
        raise AgentError("the password on stdin spans several lines; give exactly one")
    return data


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
        common.service(action)
    entry = poolpasswd.get_entry(fsio.read_text(passwd_path) or "", user)
    if entry is None or poolpasswd.decrypt_password(entry.secret, key) != password:
        raise AgentError("the pool_passwd entry for {} does not decrypt back to the given password".format(user))
    return {"user": user, "changed": changed, "backend": backend, "pool_passwd": passwd_path,
            "action": action, "key_file_created": created}


def cmd_set(args: argparse.Namespace) -> int:
    password = _read_password()
    with state.NodeLock(args.cert_dir):
        print_json(set_password(args.cert_dir, args.config, args.user, password, args.backend))
    return 0


def register(subparsers: Any) -> None:
    """Add ``pool-passwd set`` to the agent's parser."""
    pool = subparsers.add_parser("pool-passwd", help="Pgpool-II pool_passwd entries (password on stdin)")
    sub = pool.add_subparsers(dest="pool_command")
    setp = sub.add_parser("set", help="write USER's AES entry; the password is read from stdin")
    setp.add_argument("user")
    setp.add_argument("--backend", choices=("native", "pg_enc"), default="native")
    setp.add_argument("--config", default=poolkey.DEFAULT_CONF, help="pgpool.conf (default %(default)s)")
    setp.add_argument("--cert-dir", default=DEFAULT_CERT_DIR, help="certificate directory (state lives there)")
    setp.set_defaults(func=cmd_set)
    from dbtls_agent.roles.pgpool import allow
    allow.register(sub)
    pool.set_defaults(func=lambda a: (pool.print_help(sys.stderr), 2)[1])
