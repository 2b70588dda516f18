"""``status-line``: one human line per node for the dashboard (install result, status button).

The roles' ``status`` JSON differ in shape (PostgreSQL and Pgpool-II report a handshake and the
certificates, the MySQL family what the server serves, ProxySQL its runtime variables and
backends); this module folds any of them, plus ``inspect`` for the certificates, into one line.
It never fails: a node whose server cannot be asked still gets a line that says so.
"""

import argparse
from typing import Any, Dict, List

from dbtls_agent.errors import AgentError


def _on(value: Any) -> bool:
    return str(value).strip().lower() in ("1", "true", "yes", "on")


def tls_state(status: Dict[str, Any]) -> str:
    """``TLS on (TLSv1.3)`` / ``TLS off`` / ... from a role's status JSON."""
    tls = status.get("tls") or {}
    if isinstance(tls, dict) and tls.get("ok"):
        return "TLS on ({})".format(tls.get("protocol"))
    if status.get("enabled") is False:
        return "TLS off"
    served = status.get("served") if isinstance(status.get("served"), dict) else {}
    if served.get("tls_version"):
        text = "TLS on ({})".format(served["tls_version"])
        if status.get("serves_our_certificate") is False:
            text += ", serving another certificate"
        return text
    if "have_ssl" in status and str(status.get("have_ssl")).upper() != "YES":
        return "TLS off"
    if status.get("role") == "proxysql":
        have = _on((status.get("runtime_variables") or {}).get("mysql-have_ssl"))
        servers = [s for s in status.get("servers") or [] if isinstance(s, dict)]
        used = sum(1 for s in servers if _on(s.get("use_ssl")))
        return "TLS {} (backends over TLS {}/{})".format("on" if have else "off", used, len(servers))
    if status.get("error"):
        return "TLS not verified ({})".format(str(status["error"])[:120])
    return "TLS not verified"


def certificates(status: Dict[str, Any], inspect: Dict[str, Any]) -> List[Dict[str, Any]]:
    certs = status.get("certificates")
    if isinstance(certs, dict):
        certs = certs.get("certificates", [])
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
    sys.stdout.write(line(status or {}, _inspect(args)))
    return 0


def register(subparsers: Any) -> None:
    from dbtls_agent.cli import DEFAULT_CERT_DIR

    parser = subparsers.add_parser("status-line", help="one human line: TLS state, certificate, expiry, root")
    parser.add_argument("--cert-dir", default=DEFAULT_CERT_DIR, help="certificate directory (default %(default)s)")
    parser.set_defaults(func=cmd_status_line)
