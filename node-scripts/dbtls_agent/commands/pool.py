"""``pool-passwd set USER``: the seed's ``pg_enc -m -f pgpool.conf -u USER PASSWORD`` without argv secrets.

The password is read from stdin (one line; a trailing newline is dropped). The entry is recorded in
the pgpool role's change set, so ``disable --role pgpool`` restores pool_passwd as it was.
"""

import argparse
import os
import sys
from typing import Any

from dbtls_agent import state
from dbtls_agent.cli import DEFAULT_CERT_DIR, print_json
from dbtls_agent.errors import AgentError
from dbtls_agent.passwords import secretinput
from dbtls_agent.roles.pgpool import allow, poolkey


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


def cmd_set(args: argparse.Namespace) -> int:
    password = _read_password()
    with state.NodeLock(args.cert_dir):
        print_json(allow.set_password(args.cert_dir, args.config, args.user, password, args.backend))
    return 0


def cmd_allow(args: argparse.Namespace) -> int:
    user = secretinput.check_role_name(args.user)
    password = secretinput.password_for(args, user)
    with state.NodeLock(args.cert_dir):
        print_json(allow.allow(os.path.abspath(args.cert_dir), args.config, user, password))
    return 0


def _register_allow(sub: Any) -> None:
    """Add ``pool-passwd allow`` to the ``pool-passwd`` subcommands."""
    allowp = sub.add_parser("allow", help="AES entry + pool_hba for USER, reload, prove a verify-full login "
                                          "through this node (password sealed on stdin or in a root-only file)")
    allowp.add_argument("--user", required=True, help="database role (must exist, with this password)")
    secretinput.add_arguments(allowp)
    allowp.add_argument("--config", default=poolkey.DEFAULT_CONF, help="pgpool.conf (default %(default)s)")
    allowp.add_argument("--cert-dir", default=DEFAULT_CERT_DIR, help="certificate directory (state lives there)")
    allowp.set_defaults(func=cmd_allow)


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
    _register_allow(sub)
    pool.set_defaults(func=lambda a: (pool.print_help(sys.stderr), 2)[1])
