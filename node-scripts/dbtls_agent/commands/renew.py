"""``renew install|check|remove``: the node's side of the automatic renewal (certs/renewtrigger.py).

``install --from-manifest`` reads ``url=<base64>`` on stdin, keeps or draws the node's own token and
prints its SHA-256 (the manifest collects the layer's digests for the platform script; the token
itself never leaves the node); ``check`` is what the cron job runs: one log line per run, never the
token; ``remove`` undoes ``install``.
"""

import argparse
import sys
from typing import Any

from dbtls_agent import payload, state
from dbtls_agent.certs import renewtrigger
from dbtls_agent.cli import DEFAULT_CERT_DIR, print_json
from dbtls_agent.errors import AgentError


def cmd_install(args: argparse.Namespace) -> int:
    if not args.from_manifest:
        raise AgentError("renew install reads the URL from the manifest: pass --from-manifest")
    fields = payload.decode_fields(sys.stdin.read(), ("url",), "renewal settings")
    if set(fields) != {"url"}:
        raise AgentError("renewal settings: expected url=<base64>")
    with state.NodeLock(args.cert_dir):
        result = renewtrigger.install(args.cert_dir, fields["url"], args.cron_file, args.agent)
    print_json(result)
    return 0


def cmd_check(args: argparse.Namespace) -> int:
    from dbtls_agent.certs import due
    from dbtls_agent.crypto import get_backend

    report = due.due(args.cert_dir, get_backend(args.backend), renewtrigger.WITHIN_DAYS)
    try:
        outcome = renewtrigger.check(args.cert_dir, report)
    except AgentError as exc:
        sys.stderr.write("{} renewal request failed: {}\n".format(renewtrigger.stamp(), exc))
        return exc.exit_code
    if outcome["called"]:
        sys.stdout.write("{} renewal requested: {} due ({})\n".format(
            renewtrigger.stamp(), len(outcome["due"]), " ".join(outcome["due"])))
    else:
        sys.stdout.write("{} nothing due within {} days\n".format(renewtrigger.stamp(), renewtrigger.WITHIN_DAYS))
    return 0


def cmd_remove(args: argparse.Namespace) -> int:
    print_json(renewtrigger.remove(args.cert_dir, args.cron_file))
    return 0


def register(subparsers: Any) -> None:
    """``renew install|check|remove``."""
    parser = subparsers.add_parser("renew", help="the daily renewal check that asks the platform to renew")
    sub = parser.add_subparsers(dest="renew_command")
    install_p = sub.add_parser("install", help="keep or draw this node's token, keep the URL, write the cron file; "
                                             "prints the token's SHA-256 (stdin: from the manifest)")
    check_p = sub.add_parser("check", help="the cron job: when a certificate here is due, call the platform script")
    remove_p = sub.add_parser("remove", help="remove the cron file, the token and the URL")
    for p in (install_p, check_p, remove_p):
        p.add_argument("--cert-dir", default=DEFAULT_CERT_DIR, help="certificate directory (default %(default)s)")
    for p in (install_p, remove_p):
        p.add_argument("--cron-file", default=renewtrigger.CRON_FILE, help="cron file (default %(default)s)")
    install_p.add_argument("--from-manifest", action="store_true", help="stdin: 'url=<base64>'")
    install_p.add_argument("--agent", default=renewtrigger.DEFAULT_AGENT,
                           help="the agent's path in the cron line (default %(default)s)")
    check_p.add_argument("--backend", choices=("cryptography", "openssl"), help="force a crypto backend")
    install_p.set_defaults(func=cmd_install)
    check_p.set_defaults(func=cmd_check)
    remove_p.set_defaults(func=cmd_remove)
    parser.set_defaults(func=lambda a: (parser.print_help(sys.stderr), 2)[1])
