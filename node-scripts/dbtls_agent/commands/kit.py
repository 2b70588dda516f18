"""``kit build|show|remove``: client kits on the CA node (the work is in certs/kit.py).

``kit build`` takes the host names clients connect to (they must be names in the servers'
certificates for ``verify-full`` to pass); without ``--host`` it uses the environment domain this
node belongs to, which every server certificate of the add-on carries.
"""

import argparse
import sys
from typing import Any, List

from dbtls_agent.cli import DEFAULT_CERT_DIR, print_json
from dbtls_agent.commands import argtypes
from dbtls_agent.errors import AgentError

_port = argtypes.bounded_int("port number", "port", 1, 65535)



_days = argtypes.bounded_int("number of days", "days", 0, 3650)



def _default_hosts() -> List[str]:
    from dbtls_agent.certs import nodeinfo

    facts = nodeinfo.collect()
    domain = facts.get("env_domain") or facts.get("fqdn")
    if not domain:
        raise AgentError("cannot tell this environment's domain; pass --host NAME")
    return [str(domain)]


def cmd_build(args: argparse.Namespace) -> int:
    from dbtls_agent import state
    from dbtls_agent.certs import kit, nodeinfo
    from dbtls_agent.crypto import get_backend

    layer = kit.resolve_layer(args.layer, "" if args.layer else nodeinfo.compute_type())
    hosts = list(args.host) or _default_hosts()
    with state.NodeLock(args.cert_dir):
        result = kit.build(args.cert_dir, get_backend(args.backend), args.user, layer,
                           kit.registered_users(args.cert_dir), hosts, args.port, args.renew_within)
    if args.text:
        import socket

        from dbtls_agent.certs import kittext
        print(kittext.summary(result, socket.gethostname()))
    else:
        print_json(result)
    return 0


def cmd_show(args: argparse.Namespace) -> int:
    from dbtls_agent.certs import kit
    from dbtls_agent.crypto import get_backend

    print_json(kit.show(args.cert_dir, get_backend(args.backend), args.user))
    return 0


def cmd_remove(args: argparse.Namespace) -> int:
    from dbtls_agent import state
    from dbtls_agent.certs import kit

    kit.check_user(args.user)
    with state.NodeLock(args.cert_dir):
        print_json(kit.remove(args.cert_dir, args.user))
    return 0


def register(subparsers: Any) -> None:
    """Add ``kit`` and its subcommands to the agent's parser."""
    parser = subparsers.add_parser("kit", help="client kits: certificate, key and connection strings for a user")
    sub = parser.add_subparsers(dest="kit_command")
    for name, func, help_text in (("build", cmd_build, "write or refresh the kit of USER (CA node)"),
                                  ("show", cmd_show, "JSON: where the kit is, files, expiry, connection strings"),
                                  ("remove", cmd_remove, "delete the kit of USER")):
        p = sub.add_parser(name, help=help_text)
        p.add_argument("--user", required=True, help="database user (the certificate's CN)")
        p.add_argument("--cert-dir", default=DEFAULT_CERT_DIR, help="certificate directory (default %(default)s)")
        if name != "remove":
            p.add_argument("--backend", choices=("cryptography", "openssl"), help="force a crypto backend")
        if name == "build":
            p.add_argument("--host", action="append", default=[],
                           help="host name or address clients connect to (repeat; default: the environment domain)")
            p.add_argument("--layer", choices=("postgres", "mysql"), help="database family (default: this node's)")
            p.add_argument("--port", type=_port, help="port in the connection strings (default 5432 / 3306)")
            p.add_argument("--renew-within", type=_days, default=30, metavar="DAYS",
                           help="issue a new certificate when the existing one ends within DAYS (default 30)")
            p.add_argument("--text", action="store_true",
                           help="print a short summary for the dashboard instead of JSON")
        p.set_defaults(func=func)
    parser.set_defaults(func=lambda a: (parser.print_help(sys.stderr), 2)[1])
