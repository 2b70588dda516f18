"""``certs due`` and ``certs plan``: the read-only renewal report of every certificate the add-on
manages on this node, and the renewal plan of a layer made from such reports."""

import argparse
import sys
from typing import Any, Dict, List, Optional, Tuple

from dbtls_agent.certs import due, renewplan
from dbtls_agent.cli import DEFAULT_CERT_DIR, print_json
from dbtls_agent.commands import argtypes
from dbtls_agent.errors import AgentError


def cmd_due(args: argparse.Namespace) -> int:
    from dbtls_agent.crypto import get_backend

    report = due.due(args.cert_dir, get_backend(args.backend), args.within_days)
    if args.text:
        sys.stdout.write(due.text_line(report))
    else:
        print_json(report)
    return 0


def _report(data: bytes, what: str) -> Dict[str, Any]:
    """One node's ``certs due`` JSON, as data; an empty output (a node without the agent) is an
    empty report."""
    import json

    if not data.strip():
        return {"certificates": []}
    try:
        report = json.loads(data.decode("utf-8"))
    except (ValueError, UnicodeDecodeError):
        raise AgentError("{} is not the JSON 'certs due' prints".format(what)) from None
    if not isinstance(report, dict) or not isinstance(report.get("certificates"), list):
        raise AgentError("{} is not the JSON 'certs due' prints".format(what))
    return report


def read_plan_input(text: str, ca_node: int) -> Tuple[List[Tuple[int, Dict[str, Any]]], Optional[Dict[str, Any]]]:
    """stdin of ``certs plan --from-manifest``: line 1 the layer's reports ``<id>:<base64> ...``,
    line 2 the CA node's report (one base64 value), each line base64 as the manifest stores it."""
    from dbtls_agent import payload

    lines = text.splitlines()
    if not 1 <= len(lines) <= 2 or not lines[0].strip():
        raise AgentError("certs plan --from-manifest: expected two base64 lines on stdin (the layer's reports, "
                         "the CA node's report)")
    lines.append("")  # a CA node without the agent reported nothing
    layer = [(node_id, _report(data, "the report of node {}".format(node_id)))
             for node_id, data in payload.decode_list(payload.decode_text(lines[0], "report list"), "report list")]
    ca_report = _report(payload.decode(lines[1], "CA node report"),
                        "the report of the CA node {}".format(ca_node))
    return layer, ca_report


def cmd_plan(args: argparse.Namespace) -> int:
    layer, ca_report = read_plan_input(sys.stdin.read(), args.ca_node)
    the_plan = renewplan.plan(layer, args.ca_node, ca_report)
    if args.show == "json":
        print_json(the_plan)
    else:
        sys.stdout.write(renewplan.answer(the_plan, args.show, args.within_days))
    return 0


_days = argtypes.bounded_int("number of days", "days", 0, 36500)
_node_id = argtypes.bounded_int("node id", "node id", 0, 999999999999)


def register(subparsers: Any) -> None:
    """Add ``certs due`` and ``certs plan`` to the agent's parser."""
    parser = subparsers.add_parser("certs", help="certificate reports for renewal")
    sub = parser.add_subparsers(dest="certs_command")
    p = sub.add_parser("due", help="JSON: every managed certificate, its expiry and whether it is due (read-only)")
    p.add_argument("--within-days", type=_days, default=30, help="due when it ends within DAYS (default 30)")
    p.add_argument("--text", action="store_true", help="one line: what is due now and the next renewal date")
    p.add_argument("--cert-dir", default=DEFAULT_CERT_DIR, help="certificate directory (default %(default)s)")
    p.add_argument("--backend", choices=("cryptography", "openssl"), help="force a crypto backend")
    p.set_defaults(func=cmd_due)
    plan = sub.add_parser("plan", help="a layer's renewal plan from its nodes' 'certs due' reports (read-only)")
    plan.add_argument("--from-manifest", action="store_true", required=True,
                      help="stdin: the layer's reports '<id>:<base64> ...' and the CA node's report, each line base64")
    plan.add_argument("--ca-node", type=_node_id, required=True, help="the CA node's id")
    plan.add_argument("--show", choices=renewplan.QUESTIONS, default="summary",
                      help="summary (text), work (yes/no), scope (server/client/all/none), kits or users "
                           "(names, one a line), json")
    plan.add_argument("--within-days", type=_days, default=30, help="the days the reports used (for the summary)")
    plan.set_defaults(func=cmd_plan)
    parser.set_defaults(func=lambda a: (parser.print_help(sys.stderr), 2)[1])
