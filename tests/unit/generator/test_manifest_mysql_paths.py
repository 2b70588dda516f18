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


def test_row_reads_mysql_status_and_inspect():
    status = {"role": "mysql", "have_ssl": "YES", "served": {"sha256": "ab", "tls_version": "TLSv1.3"},
              "serves_our_certificate": True}
    inspect = {"certificates": [{"role": "server", "cn": "node101.test", "days_left": 800},
                                {"role": "server-root", "sha256": "ff" * 32}]}
    row = _row(_node(), json.dumps(status), json.dumps(inspect))
    assert (row.tls, row.cert, row.days_left, row.root_sha256) == ("ok TLSv1.3", "node101.test", "800", ("ff" * 32)[:23])


def test_row_flags_a_foreign_served_certificate_and_probe_errors():
    other = {"role": "mysql", "served": {"tls_version": "TLSv1.3"}, "serves_our_certificate": False}
    assert _row(_node(), json.dumps(other)).tls == "FAIL serves another certificate"
    failed = {"role": "mysql", "served": {"error": "connection refused"}, "serves_our_certificate": False}
    assert _row(_node(), json.dumps(failed)).tls == "FAIL connection refused"


def test_row_reads_proxysql_status():
    on = {"role": "proxysql", "runtime_variables": {"mysql-have_ssl": "true"}, "servers": []}
    assert _row(_node(), json.dumps(on)).tls == "enabled"
    off = {"role": "proxysql", "runtime_variables": {"mysql-have_ssl": "false"}, "servers": []}
    assert _row(_node(), json.dumps(off)).tls == "off"
