"""The manifest's MySQL-family paths that only the docker test ran before: the client-certificate
button calls a subcommand the agent has, and the simulator's node table reads MySQL status."""

from __future__ import annotations

import json
import re
import sys
from pathlib import Path

from dbtls.addon import shell
from dbtls.jps.model import Node
from dbtls.sim.addon import _row

sys.path.insert(0, str(Path(__file__).resolve().parents[3] / "node-scripts"))


def _agent_commands() -> set[str]:
    import argparse

    from dbtls_agent import cli

    actions = [a for a in cli.build_parser()._actions if isinstance(a, argparse._SubParsersAction)]
    return {name for action in actions for name in action.choices}


def test_require_client_cert_button_calls_user_cert():
    script = shell.require_client_cert()
    assert "user=$(b64 '${settings.dbUser.toBase64()}' | base64 -d)" in script
    called = re.search(r'^\$A ([a-z-]+) --user "\$user"$', script, re.M)
    assert called and called.group(1) == "user-cert"
    assert called.group(1) in _agent_commands()


def _node() -> Node:
    return Node(101, "sqldb", "mariadb-dockerized", True, "10.0.0.1", "node101.test")


CERTS = [{"role": "server", "cn": "node101.test", "days_left": 800}, {"role": "server-root", "sha256": "ff" * 32}]


def _status(role, stages, tls, certificates=CERTS, **details):
    """A status document as the agent builds it (the simulator reads this shape, and only it)."""
    from dbtls_agent.roles import statusschema

    doc = statusschema.document(role, "10.11.6", True, stages, tls, certificates, **details)
    assert statusschema.problems(doc) == []
    return json.dumps(doc)


def test_row_reads_the_status_document_of_a_mysql_node():
    from dbtls_agent.roles.statusschema import tls

    row = _row(_node(), _status("mysql", ["offer"], tls(True, "handshake", "TLSv1.3", "ab", "ab"),
                                served={"sha256": "ab"}))
    assert (row.tls, row.cert, row.days_left, row.root_sha256) == ("ok TLSv1.3", "node101.test", "800", ("ff" * 32)[:23])


def test_row_flags_a_foreign_served_certificate_and_probe_errors():
    from dbtls_agent.roles.statusschema import tls

    other = tls(False, "handshake", "TLSv1.3", "cd", "ab", "the server serves another certificate")
    assert _row(_node(), _status("mysql", ["offer"], other)).tls == "FAIL the server serves another certificate"
    failed = tls(False, "handshake", error="connection refused")
    assert _row(_node(), _status("mysql", ["offer"], failed)).tls == "FAIL connection refused"


def test_row_reads_proxysql_status_and_inspect_alone():
    from dbtls_agent.roles.statusschema import tls

    on = tls(True, "runtime", note="backends over TLS 2/2")
    assert _row(_node(), _status("proxysql", ["offer", "use"], on)).tls == "ok runtime"
    assert _row(_node(), _status("proxysql", [], None, [])).tls == "off"
    assert _row(_node(), json.dumps({"certificates": CERTS})).tls == "certs only"
    assert _row(_node(), "").tls == "no agent"
