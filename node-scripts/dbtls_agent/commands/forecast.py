"""``restart-expected``: will the next ``enable --stage offer`` or ``disable`` of the mysql role restart
the server? The forecast itself is :mod:`dbtls_agent.roles.mysql.forecast`.
"""

import argparse
from typing import Any

from dbtls_agent import state, vocab
from dbtls_agent.cli import DEFAULT_CERT_DIR, print_json
from dbtls_agent.roles.mysql import forecast


def _context(args: argparse.Namespace) -> Any:
    from dbtls_agent.roles import base
    if args.options:
        from dbtls_agent import options
        args.min_tls = options.load(args.cert_dir)["min_tls"]
    return base.Context(args, "restart-expected", {})


def cmd_restart_expected(args: argparse.Namespace) -> int:
    ctx = _context(args)
    with state.NodeLock(ctx.cert_dir):
        restart, reason = forecast.offer_restarts(ctx) if args.step == "offer" else forecast.disable_restarts(ctx)
    print_json({"step": args.step, "restart": restart, "reason": reason})
    return 0


def register(subparsers: Any) -> None:
    """Add ``restart-expected`` to the agent's parser."""
    r = subparsers.add_parser("restart-expected", help="database node: JSON, whether the next offer or "
                                                        "disable restarts the server")
    r.add_argument("--step", choices=("offer", "disable"), required=True)
    r.add_argument("--min-tls", choices=vocab.MIN_TLS_VERSIONS, default=vocab.DEFAULT_MIN_TLS)
    r.add_argument("--cert-dir", default=DEFAULT_CERT_DIR, help="certificate directory")
    r.add_argument("--options", action="store_true", help="take --min-tls from the saved install options")
    r.set_defaults(func=cmd_restart_expected)
