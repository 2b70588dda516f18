"""``certs due``: the read-only renewal report of every certificate the add-on manages on this node."""

import argparse
import sys
from typing import Any

from dbtls_agent.certs import due
from dbtls_agent.cli import DEFAULT_CERT_DIR, print_json
from dbtls_agent.commands import argtypes


def cmd_due(args: argparse.Namespace) -> int:
    from dbtls_agent.crypto import get_backend

    print_json(due.due(args.cert_dir, get_backend(args.backend), args.within_days))
    return 0


_days = argtypes.bounded_int("number of days", "days", 0, 36500)



def register(subparsers: Any) -> None:
    """Add ``certs due`` to the agent's parser."""
    parser = subparsers.add_parser("certs", help="certificate reports for renewal")
    sub = parser.add_subparsers(dest="certs_command")
    p = sub.add_parser("due", help="JSON: every managed certificate, its expiry and whether it is due (read-only)")
    p.add_argument("--within-days", type=_days, default=30, help="due when it ends within DAYS (default 30)")
    p.add_argument("--cert-dir", default=DEFAULT_CERT_DIR, help="certificate directory (default %(default)s)")
    p.add_argument("--backend", choices=("cryptography", "openssl"), help="force a crypto backend")
    p.set_defaults(func=cmd_due)
    parser.set_defaults(func=lambda a: (parser.print_help(sys.stderr), 2)[1])
