"""``replication wait [--timeout S]``: block until every standby/replica streams again (see replwait).

JSON on stdout in every case (per replica: its state, whether it is back, how many IO-thread kicks it
took); when replication is not back at the deadline the command also prints one line on stderr and
exits 2, so a manifest step fails with a readable reason. It takes the node lock only for a MySQL
replica, where it may restart IO threads; on other nodes it only reads.
"""

import argparse
import sys
from typing import Any, Dict

from dbtls_agent import state
from dbtls_agent.cli import DEFAULT_CERT_DIR, print_json
from dbtls_agent.errors import AgentError
from dbtls_agent.roles import base, replwait
from dbtls_agent.roles.mysql import role as mysql

DEFAULT_TIMEOUT_S = 120.0


def _wait(role: str, ctx: Any, timeout: float, forget: bool = False) -> Dict[str, Any]:
    if role == "postgres":
        return replwait.wait_pg(ctx.cert_dir, timeout, forget)
    if role == "mysql":
        return replwait.wait_mysql(mysql.Node(ctx), ctx.cert_dir, timeout, forget)
    if role in ("pgpool", "proxysql"):
        return {"role": role, "side": "none", "ok": True, "seconds": 0.0, "replicas": []}
    raise AgentError("unknown role {}".format(role))


def cmd_wait(args: argparse.Namespace) -> int:
    from dbtls_agent.commands.roles import resolve_role
    if args.timeout <= 0:
        raise AgentError("--timeout must be a positive number of seconds")
    ctx = base.Context(args, "replication")
    role = resolve_role(args.role)
    if role == "mysql":
        with state.NodeLock(ctx.cert_dir):
            result = _wait(role, ctx, args.timeout, args.forget)
    else:
        result = _wait(role, ctx, args.timeout, args.forget)
    print_json(result)
    if not result["ok"]:
        sys.stderr.write("dbtls-agent: error: {}\n".format(replwait.failure_line(result, args.timeout)))
        return 2
    return 0


def register(subparsers: Any) -> None:
    """Add ``replication wait`` to the agent's parser."""
    from dbtls_agent.commands.roles import ROLE_CHOICES
    repl = subparsers.add_parser("replication", help="replication checks")
    sub = repl.add_subparsers(dest="replication_command")
    wait = sub.add_parser("wait", help="wait until every standby/replica streams again (restarts IO threads "
                                       "that wait for their retry timer)")
    wait.add_argument("--role", choices=ROLE_CHOICES, default="auto", help="server role (default: detect)")
    wait.add_argument("--timeout", type=float, default=DEFAULT_TIMEOUT_S, help="seconds (default %(default)s)")
    wait.add_argument("--forget", action="store_true",
                      help="primary: wait only for the standbys/replicas connected now, and forget the others")
    wait.add_argument("--cert-dir", default=DEFAULT_CERT_DIR, help="certificate directory (state lives there)")
    wait.set_defaults(func=cmd_wait)
    repl.set_defaults(func=lambda a: (repl.print_help(sys.stderr), 2)[1])
