"""``restart-expected``: will the next ``enable --stage offer`` or ``disable`` of the mysql role on
this node restart the server?

The manifest asks before it drains the node in ProxySQL (roles/proxysql/drain.py): a node that switches TLS
live (MySQL 8.0.16+), or that already serves it with these settings (a re-run after scale-out), is
never taken out of rotation for nothing. The forecast follows roles/mysql/role.py ``_offer``'s rules; when
in doubt it says "restart", and a needless drain costs only the drain.
"""

import json
import os
from typing import Any, Tuple

from dbtls_agent import fsio, nodeos, state
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
    """Whether ``enable --role mysql --stage offer`` will restart the server, by the rules of
    roles/mysql/role.py ``_offer``: restart-only servers that do not serve our files yet, or whose TLS
    settings in ssl-config.cnf change."""
    ctx = Context.of(ctx)
    from dbtls_agent.crypto import get_backend
    from dbtls_agent.roles.mysql import cipherorder, mycnf, role
    from dbtls_agent.roles.mysql import node as mysqlnode

    node = role.Node(ctx)
    what = "{} {}".format(node.flavor, ".".join(map(str, node.version)))
    if not flavor.first_enable_needs_restart(node.flavor, node.version):
        return False, "{} switches TLS on without a restart".format(what)
    live = node.live()
    ours = {"ssl_cert": os.path.join(node.server_dir, "server.crt"),
            "ssl_key": os.path.join(node.server_dir, "server.key"), "ssl_ca": node.root_crt}
    if (live["have_ssl"] or "").upper() != "YES" or any(live[k] != v for k, v in ours.items()):
        return True, "{} does not serve our certificate files yet (have_ssl={})".format(what, live["have_ssl"])
    directory, _main = mysqlnode.dropin_plan(fsio.read_text)
    path = os.path.join(directory, mycnf.SSL_CONFIG_NAME)
    key = get_backend().public_key_info(fsio.read_bytes(ours["ssl_key"]) or b"")
    wanted = mycnf.render_ssl_config(node.cert_dir, key_type=key["key_type"], tls_versions=ctx.tls_versions(),
                                     flavor=node.flavor, version=node.version)
    if role.restart_relevant(fsio.read_text(path)) != role.restart_relevant(wanted):
        return True, "the TLS settings in {} change".format(path)
    if cipherorder.pending(directory, node.flavor == flavor.MARIADB, nodeos.run_status):
        return True, "mysqld's OpenSSL settings (server cipher order) change"
    if flavor.cert_swap_statement(node.flavor, node.version) is None:
        return True, "{} loads a new certificate only at start".format(what)
    return False, "{} already serves TLS with these settings".format(what)


def disable_restarts(ctx: Any) -> Tuple[bool, str]:
    """Whether ``disable --role mysql`` will restart the server: restart-only servers with files of
    ours to restore (or an unfinished earlier disable)."""
    ctx = Context.of(ctx)
    from dbtls_agent.roles.mysql import role

    facts = role.detect()
    if not facts:
        return False, "no MySQL-family server on this node"
    parts = [int(p) for p in str(facts["version"]).split(".")[:3]] + [0, 0, 0]
    what = "{} {}".format(facts["flavor"], facts["version"])
    if not flavor.first_enable_needs_restart(str(facts["flavor"]), (parts[0], parts[1], parts[2])):
        return False, "{} switches TLS off without a restart".format(what)
    cert_dir = ctx.cert_dir
    if state.ChangeSet(cert_dir, role.ROLE).entries or _journal_unfinished(cert_dir, "disable"):
        return True, "{} restarts to drop the TLS configuration".format(what)
    return False, "nothing of ours to remove on {}".format(what)
