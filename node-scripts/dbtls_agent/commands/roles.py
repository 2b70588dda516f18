"""``detect``, ``enable``, ``disable``, ``status``: one front door for every server role.

Only parsing, locking and printing live here; the work is in the role modules named by
:mod:`dbtls_agent.roles`, so adding MySQL or ProxySQL never touches this file.
"""

import argparse
from typing import Any

from dbtls_agent import roles, state, vocab
from dbtls_agent.cli import DEFAULT_CERT_DIR, print_json
from dbtls_agent.errors import AgentError
from dbtls_agent.roles import base

ROLE_CHOICES = ("auto",) + roles.ROLE_NAMES


def _shared(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--role", choices=ROLE_CHOICES, default="auto", help="server role (default: detect)")
    parser.add_argument("--cert-dir", default=DEFAULT_CERT_DIR, help="certificate directory (default %(default)s)")
    parser.add_argument("--json", action="store_true", default=True, help="JSON output (the default)")


def _enable_options(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--stage", choices=("offer", "use", "require", "all"), default="all",
                        help="step of the cluster order to run (default all)")
    parser.add_argument("--client-cert-auth", action="store_true", help="remote rules demand a client certificate")
    parser.add_argument("--keep-md5-compat", action="store_true",
                        help="legacy: every remote password rule becomes md5 instead of scram-sha-256 (not needed: "
                             "roles with md5 secrets get md5 rules of their own by default)")
    parser.add_argument("--enforce-anyway", action="store_true",
                        help="go ahead even when a login that works now would stop working (see 'preflight')")
    parser.add_argument("--min-tls", choices=vocab.MIN_TLS_VERSIONS, default=vocab.DEFAULT_MIN_TLS)
    parser.add_argument("--require-tls", action="store_true", help="MySQL family: require TLS for every account")
    parser.add_argument("--no-client-cert-address", action="append", default=[], metavar="IP",
                        help="address that never presents a client certificate (Pgpool nodes); repeatable")
    parser.add_argument("--passwords-stdin", action="store_true",
                        help='read {"webadmin": "...", "pgpool": "...", ...} as JSON from stdin')
    parser.add_argument("--passwords-sealed", action="store_true",
                        help="read blobs from 'secrets seal' on stdin; opened with this node's recipient key, "
                             "which is deleted afterwards")
    parser.add_argument("--upstream-mode", action="store_true", help="restart instead of reload (benchmarks)")
    parser.add_argument("--options", action="store_true",
                        help="take --min-tls, --client-cert-auth, --keep-md5-compat, --require-tls and "
                             "--upstream-mode from the install options saved on this node ('options save')")
    parser.add_argument("--from-manifest", action="store_true",
                        help="with --passwords-sealed: stdin is the manifest's base64 list of the blobs")


def resolve_role(requested: str) -> str:
    if requested != "auto":
        return requested
    found = roles.detect_all()
    if not found:
        raise AgentError("no supported database server found on this node; pass --role")
    return str(found[0]["role"])


def _context(args: argparse.Namespace, command: str) -> base.Context:
    if getattr(args, "options", False):
        from dbtls_agent import options

        options.apply_to_enable(args, options.load(args.cert_dir))
    passwords = {}  # type: Dict[str, str]
    if getattr(args, "passwords_stdin", False) and getattr(args, "passwords_sealed", False):
        raise AgentError("--passwords-stdin and --passwords-sealed both read stdin: pass one")
    if getattr(args, "passwords_stdin", False):
        from dbtls_agent.roles.postgres import accounts
        passwords = accounts.read_passwords_stdin()
    elif getattr(args, "passwords_sealed", False):
        from dbtls_agent.passwords import exchange
        passwords = exchange.read_sealed_stdin(args.cert_dir, getattr(args, "from_manifest", False))
    return base.Context(args, command, passwords)


def _run(args: argparse.Namespace, command: str) -> int:
    ctx = _context(args, command)
    with state.NodeLock(ctx.cert_dir):
        role = resolve_role(args.role)
        if command == "disable" and ctx.stage != "all" and role != "postgres":
            raise AgentError("disable --stage {} applies to the postgres role only".format(ctx.stage))
        result = getattr(roles.load(role), command)(ctx)  # type: Any
    print_json(result)
    return 0


def cmd_detect(args: argparse.Namespace) -> int:
    if args.role != "auto":
        facts = roles.load(args.role).detect()
        if not facts:
            raise AgentError("no {} server on this node".format(args.role))
        found = [facts]
    else:
        found = roles.detect_all()
        if not found:
            raise AgentError("no supported database server found on this node")
    result = dict(found[0])
    result["roles"] = [f["role"] for f in found]
    print_json(result)
    return 0


def register(subparsers: Any) -> None:
    """Add the role subcommands to the agent's parser."""
    detect = subparsers.add_parser("detect", help="JSON: which server runs here, its version and files")
    _shared(detect)
    detect.set_defaults(func=cmd_detect)

    enable = subparsers.add_parser("enable", help="turn TLS on for this node's server (by stage)")
    _shared(enable)
    _enable_options(enable)
    enable.set_defaults(func=lambda a: _run(a, "enable"))

    disable = subparsers.add_parser("disable", help="restore every file dbtls changed; reload/restart")
    _shared(disable)
    disable.add_argument("--remove-certs", action="store_true", help="also delete server/ and client/ certificates")
    disable.add_argument("--stage", choices=("require", "all"), default="all",
                         help="postgres: 'require' only stops requiring TLS/SCRAM (pg_hba.conf and md5 secrets "
                              "back, TLS still offered), the first step of an uninstall; default all")
    disable.add_argument("--upstream-mode", action="store_true", help=argparse.SUPPRESS)
    disable.add_argument("--force", action="store_true",
                         help="pgpool: disable even while the backends still require TLS (Pgpool loses them)")
    disable.set_defaults(func=lambda a: _run(a, "disable"))

    status = subparsers.add_parser("status", help="JSON: TLS handshake result, served fingerprint, certificates")
    _shared(status)
    status.set_defaults(func=lambda a: _run(a, "status"))
