"""``restart-expected``: will the next ``enable --stage offer`` or ``disable`` of the mysql role on
this node restart the server?

The manifest asks before it drains the node in ProxySQL (roles/proxysql/drain.py): a node that switches TLS
live (MySQL 8.0.16+), or that already serves it with these settings (a re-run after scale-out), is
never taken out of rotation for nothing. The answer is the role's own plan (``role.plan_offer``,
``role.disable_restarts``); when the plan cannot be made the command fails and the manifest drains
anyway: a needless drain costs only the drain.
"""

import json
from typing import Any, Tuple

from dbtls_agent import fsio, state
from dbtls_agent.roles.base import Context
from dbtls_agent.roles.mysql import flavor


def _journal_unfinished(cert_dir: str, command: str) -> bool:
    """An earlier ``disable`` of the mysql role that did not finish (its re-run restarts)."""
    text = fsio.read_text(state.layout(cert_dir).journal("mysql"))
    try:
        data = json.loads(text) if text else {}
    except ValueError:
        return True
    return bool(data) and not data.get("finished") and data.get("command") == command


def offer_restarts(ctx: Any) -> Tuple[bool, str]:
    """Whether ``enable --role mysql --stage offer`` will restart the server: the role's own plan."""
    from dbtls_agent.roles.mysql import role

    ctx = Context.of(ctx)
    plan = role.plan_offer(ctx, role.Node(ctx))
    return plan.needs_restart, plan.reason


def disable_restarts(ctx: Any) -> Tuple[bool, str]:
    """Whether ``disable --role mysql`` will restart the server: the role's rule, with every recorded
    file counted as one it will put back (or an unfinished earlier disable)."""
    ctx = Context.of(ctx)
    from dbtls_agent.roles.mysql import role

    facts = role.detect()
    if not facts:
        return False, "no MySQL-family server on this node"
    parts = [int(p) for p in str(facts["version"]).split(".")[:3]] + [0, 0, 0]
    version = (parts[0], parts[1], parts[2])
    what = "{} {}".format(facts["flavor"], facts["version"])
    if not flavor.first_enable_needs_restart(str(facts["flavor"]), version):
        return False, "{} switches TLS off without a restart".format(what)
    cert_dir = ctx.cert_dir
    outcomes = ["restored"] * len(state.ChangeSet(cert_dir, role.ROLE).entries)
    if role.disable_restarts(str(facts["flavor"]), version, outcomes, _journal_unfinished(cert_dir, "disable")):
        return True, "{} restarts to drop the TLS configuration".format(what)
    return False, "nothing of ours to remove on {}".format(what)
