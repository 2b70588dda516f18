"""``status-line``: one human line per node for the dashboard (install result, status button).

It reads the status document every role returns (:mod:`dbtls_agent.roles.statusschema`): ``enabled``,
``tls`` and ``certificates``; ``inspect`` gives the certificates when the server cannot be asked.
It never fails: a node whose server cannot be asked still gets a line that says so.
"""

import argparse
from typing import Any, Dict, List

from dbtls_agent.errors import AgentError


def tls_state(status: Dict[str, Any]) -> str:
    """``TLS on (TLSv1.3)`` / ``TLS off`` / ... from a status document."""
    tls = status.get("tls") if isinstance(status.get("tls"), dict) else {}
    note = tls.get("note")
    if tls.get("ok"):
        detail = ", ".join(str(p) for p in (tls.get("protocol"), note) if p)
        return "TLS on ({})".format(detail) if detail else "TLS on"
    if tls.get("protocol") and tls.get("sha256") and tls.get("sha256") != tls.get("expected_sha256"):
        return "TLS on ({}), serving another certificate".format(tls["protocol"])
    if status.get("enabled") is False:
        return "TLS off ({})".format(note) if note else "TLS off"
    error = tls.get("error") or status.get("error")
    if error:
        return "TLS not verified ({})".format(str(error)[:120])
    return "TLS not verified"


def certificates(status: Dict[str, Any], inspect: Dict[str, Any]) -> List[Dict[str, Any]]:
    certs = status.get("certificates")
    if not isinstance(certs, list):
        certs = inspect.get("certificates")
    return [c for c in certs if isinstance(c, dict)] if isinstance(certs, list) else []


def line(status: Dict[str, Any], inspect: Dict[str, Any]) -> str:
    """The dashboard line for one node."""
    certs = certificates(status, inspect)
    server = next((c for c in certs if c.get("role") in ("server", "server.crt")), {})
    root = next((c for c in certs if "root" in str(c.get("role"))), {})
    client = next((c for c in certs if str(c.get("role")).startswith("client")), None)
    text = "{}; server cert {} expires {} ({} days); root sha256 {}".format(
        tls_state(status), server.get("cn", "-"), str(server.get("not_after", "-"))[:10],
        server.get("days_left", "-"), str(root.get("sha256", "-"))[:23])
    if client:
        text += "; client certs in {}".format(str(client.get("path", "")).rsplit("/", 1)[0])
    return text


def _status(args: argparse.Namespace) -> Dict[str, Any]:
    from dbtls_agent import roles, state
    from dbtls_agent.commands import roles as commands_roles
    from dbtls_agent.roles import base

    try:
        role = commands_roles.resolve_role("auto")
        ctx = base.Context(argparse.Namespace(cert_dir=args.cert_dir, role=role, stage="all"), "status")
        with state.NodeLock(ctx.cert_dir):
            result = roles.load(role).status(ctx)
        return result if isinstance(result, dict) else {}
    except AgentError as exc:
        return {"error": str(exc)}


def _inspect(args: argparse.Namespace) -> Dict[str, Any]:
    from dbtls_agent.certs import inspect as certs_inspect
    from dbtls_agent.certs.layout import CertLayout
    from dbtls_agent.crypto import get_backend

    try:
        return certs_inspect.inspect(CertLayout(args.cert_dir), get_backend(None))
    except AgentError:
        return {}


def cmd_status_line(args: argparse.Namespace) -> int:
    import sys

    status = _status(args)
    inspect = {} if isinstance(status.get("certificates"), list) else _inspect(args)
    sys.stdout.write(line(status, inspect))
    return 0


def register(subparsers: Any) -> None:
    from dbtls_agent.cli import DEFAULT_CERT_DIR

    parser = subparsers.add_parser("status-line", help="one human line: TLS state, certificate, expiry, root")
    parser.add_argument("--cert-dir", default=DEFAULT_CERT_DIR, help="certificate directory (default %(default)s)")
    parser.set_defaults(func=cmd_status_line)
