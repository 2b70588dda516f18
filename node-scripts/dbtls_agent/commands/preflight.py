"""``preflight``: what enabling TLS would do to this node's existing logins, without changing anything.

JSON by default (the same ``needs_action``/``blockers`` lists ``enable`` reports); ``--text`` prints a
few lines for a person or the dashboard. It takes no node lock: it only reads, so it can run while
an enable on the same node waits for, or holds, the lock.
"""

import argparse
import sys
from typing import Any, Dict

from dbtls_agent.cli import DEFAULT_CERT_DIR, print_json
from dbtls_agent.commands import preflight_text
from dbtls_agent.roles import base


def report_for(role: str, ctx: base.Context) -> Dict[str, Any]:
    """The pre-flight report of ``role`` on this node (each role's module does the reading)."""
    if role == "postgres":
        from dbtls_agent.roles import common
        from dbtls_agent.roles.postgres import preflight, server
        info = server.facts(require_running=True) or {}
        extra = common.load_extra(ctx, "postgres")
        facts = preflight.gather(info, extra.get("tls_offered_at"))
        return preflight.analyse(facts)
    if role == "pgpool":
        from dbtls_agent.roles.pgpool import report as poolreport
        from dbtls_agent.roles.pgpool import role as pgpool
        info = pgpool.detect()
        if info is None:
            from dbtls_agent.errors import AgentError
            raise AgentError("no Pgpool-II on this node")
        report = poolreport.gather_and_analyse(info["config_file"], info["hba_file"])
        report["version"] = info.get("version")
        return report
    if role == "mysql":
        from dbtls_agent.roles.mysql import preflight as mysqlpreflight
        from dbtls_agent.roles.mysql import role as mysql
        node = mysql.Node(ctx)
        return mysqlpreflight.analyse(mysqlpreflight.gather(node, ctx.opt("no_client_cert_address") or []))
    from dbtls_agent.roles.proxysql import report as proxysqlreport
    from dbtls_agent.roles.proxysql import role as proxysql
    return proxysqlreport.gather_and_analyse(proxysql.Admin(ctx))


def cmd_preflight(args: argparse.Namespace) -> int:
    from dbtls_agent.commands.roles import resolve_role
    role = resolve_role(args.role)
    report = report_for(role, base.Context(args, "preflight"))
    if args.text:
        sys.stdout.write(preflight_text.render(report, role))
    else:
        print_json(report)
    return 0


def register(subparsers: Any) -> None:
    """Add ``preflight`` to the agent's parser."""
    from dbtls_agent.commands.roles import ROLE_CHOICES
    parser = subparsers.add_parser("preflight", help="read-only report: what enabling TLS changes for "
                                                     "existing logins, sessions and replication")
    parser.add_argument("--role", choices=ROLE_CHOICES, default="auto", help="server role (default: detect)")
    parser.add_argument("--text", action="store_true", help="a few lines for people instead of JSON")
    parser.add_argument("--cert-dir", default=DEFAULT_CERT_DIR, help="certificate directory (default %(default)s)")
    parser.add_argument("--no-client-cert-address", action="append", default=[], metavar="IP",
                        help="proxy address (Pgpool-II/ProxySQL node); its sessions are not counted as clients")
    parser.set_defaults(func=cmd_preflight)
