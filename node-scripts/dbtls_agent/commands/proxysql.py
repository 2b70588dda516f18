"""``proxysql-backend``: take one MySQL backend out of ProxySQL's rotation around its restart, and back.

The work and its rules are in :mod:`dbtls_agent.roles.proxysql.drain`; this module parses, locks and prints.
"""

import argparse
import sys
from typing import Any

from dbtls_agent import state
from dbtls_agent.cli import DEFAULT_CERT_DIR, print_json
from dbtls_agent.errors import AgentError
from dbtls_agent.roles.proxysql import drain


def _context(args: argparse.Namespace, command: str) -> Any:
    from dbtls_agent.roles import base
    passwords = {}  # type: Dict[str, str]
    if getattr(args, "passwords_stdin", False):
        from dbtls_agent.roles.postgres import accounts
        passwords = accounts.read_passwords_stdin()
    return base.Context(args, command, passwords)


def cmd_backend(args: argparse.Namespace) -> int:
    names = drain.split_addresses(args.address)
    if args.all and args.state != "online":
        raise AgentError("--all only goes with --state online")
    if not names and not args.all:
        raise AgentError("name the backend with --address (its hostname, FQDN or IP; repeatable)")
    if args.drain_timeout < 0:
        raise AgentError("--drain-timeout must be 0 or more seconds")
    ctx = _context(args, "proxysql-backend")
    with state.NodeLock(ctx.cert_dir):
        if args.state == "offline-soft":
            result = drain.take_offline(ctx, names, args.port, args.drain_timeout)
        else:
            result = drain.put_online(ctx, names, args.port, args.all)
    for message in result.get("warnings", []):
        sys.stderr.write("dbtls-agent: warning: {}\n".format(message))
    print_json(result)
    return 0


def register(subparsers: Any) -> None:
    """Add ``proxysql-backend`` to the agent's parser."""
    p = subparsers.add_parser("proxysql-backend", help="ProxySQL node: drain one backend (OFFLINE_SOFT) "
                                                        "before its restart, put it back ONLINE after")
    p.add_argument("--state", choices=("offline-soft", "online"), required=True)
    p.add_argument("--address", action="append", default=[], metavar="HOST",
                   help="a name the backend is listed under in mysql_servers (hostname, FQDN, IP); repeatable, "
                        "or several separated by spaces/commas")
    p.add_argument("--port", type=int, help="only rows with this port (default: every port)")
    p.add_argument("--all", action="store_true", help="online: every row an earlier offline-soft recorded")
    p.add_argument("--drain-timeout", type=float, default=drain.DEFAULT_DRAIN_TIMEOUT_S, metavar="S",
                   help="offline-soft: wait at most S seconds for ConnUsed=0, then go ahead with a "
                        "warning (default %(default).0f)")
    p.add_argument("--cert-dir", default=DEFAULT_CERT_DIR, help="certificate directory (state lives there)")
    p.add_argument("--passwords-stdin", action="store_true",
                   help='read {"proxysql-admin": "user:password"} from stdin (default: /etc/proxysql.cnf)')
    p.set_defaults(func=cmd_backend)
