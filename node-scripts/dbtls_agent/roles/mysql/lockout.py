"""The mysql role's "nobody locked out" step: refuse Require TLS while a client without TLS is connected.

Without *Require TLS* enable refuses nobody (TLS is offered, not demanded), so there is nothing to
check. With it, ``require_secure_transport=ON`` refuses every TCP login without TLS; a session
connected without TLS *after* TLS was offered (the offer stage records since when: the server's
start and the connection id at that moment) is a client that does not use TLS, and the require
stage stops before changing anything while one is connected, unless ``--enforce-anyway`` is given.
Sessions from proxy addresses (``--no-client-cert-address``: ProxySQL nodes) are left out:
ProxySQL's pooled backend connections from before its own enable close by themselves, its new ones
use TLS. With performance_schema off a session's TLS state is unknown and it is only reported.
"""

import time
from typing import Any, Dict, List

from dbtls_agent.roles import lockout
from dbtls_agent.roles.base import Context
from dbtls_agent.roles.mysql import preflight


def record_offered(node: Any) -> None:
    """Remember (once) since when this server offers TLS: its start time and the next connection id."""
    row = node.client.rows("SELECT CONNECTION_ID(), UNIX_TIMESTAMP()")[0]
    uptime = node.client.rows("SHOW GLOBAL STATUS LIKE 'Uptime'")
    now = float(row[1] or time.time())
    node.state.remember("tls_offered", {"conn_id": int(row[0]), "server_start": now - float(uptime[0][1])
                                        if uptime else None})


def check(ctx: Any, node: Any, stages: List[str]) -> Dict[str, Any]:
    """The pre-flight report; raises before anything changes when Require TLS would lock someone out.

    Without Require TLS being turned on by this run nothing is refused, so the report is not needed
    and a failure to read it never stops the run.
    """
    ctx = Context.of(ctx)
    live = node.live()
    turning_on = "require" in stages and bool(ctx.get("require_tls", False)) and \
        (live.get("require_secure_transport") or "OFF").upper() not in ("ON", "1")
    if not turning_on:
        return {"needs_action": [], "blockers": []}
    report = preflight.analyse(preflight.gather(node, ctx.get("no_client_cert_address", []) or []))
    say = getattr(ctx, "say", None)
    lockout.stop_or_go(report["blockers"], bool(ctx.get("enforce_anyway", False)),
                       say if callable(say) else (lambda _m: None))
    return report
