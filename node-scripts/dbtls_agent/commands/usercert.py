"""``user-cert``: make a MySQL account log in only with a client certificate from our CA.

``user-cert --user NAME`` sets ``REQUIRE X509`` on every host entry of NAME (``--subject``: ``REQUIRE
SUBJECT '/CN=NAME'``, the exact one-line form the server compares); the previous
requirement of each row is recorded once and ``--remove`` (or ``disable --role mysql``) puts it back.
On the CA node it also issues a client certificate with CN=NAME into ``client/users/NAME/``.
Run it on the primary: account changes replicate to the replicas.
"""

import argparse
import os
import re
from typing import Any, Dict

from dbtls_agent import fsio, state
from dbtls_agent.errors import AgentError
from dbtls_agent.roles.base import Context
from dbtls_agent.roles.mysql import users
from dbtls_agent.state import DEFAULT_CERT_DIR, NodeLock

STATE_ROLE = "mysql-users"
#: Account names this command takes: the install form's characters, at most MariaDB's 80, and never
#: a leading dot or dash. The name becomes a folder name (client/users/NAME), so ``.``, ``..`` and
#: anything with a ``/`` must never get that far.
USER_NAME = re.compile(r"^[A-Za-z0-9_@%][A-Za-z0-9_.@%-]{0,79}$")


def check_user_name(name: str) -> str:
    """``name`` when it is one this command takes; else one AgentError line."""
    if not USER_NAME.match(name or ""):
        raise AgentError("{!r} is not a user name dbtls takes: 1-80 characters of A-Z a-z 0-9 _ . @ % -, "
                         "not starting with '.' or '-'".format(name))
    return name


def _prepare(cert_dir: str, user: str) -> Any:
    """client/users/USER made ready (or a reason why this node issues nothing), before any account
    changes: a folder the agent refuses to use must leave the account as it was.

    client/ belongs to the service account: fsio walks it without following any link planted there
    and sets owner and mode on the opened folder, never by name.
    """
    from dbtls_agent.certs.layout import CertLayout, service_owner
    from dbtls_agent.crypto.names import check_cn

    check_cn(user, "database user name")  # what signing will demand, checked before anything changes
    if not os.path.isfile(CertLayout(cert_dir).ca_key):
        return {"issued": False, "reason": "no CA key on this node; issue one on the CA node with "
                                           "'csr --kind client --user NAME' + 'ca sign'"}
    target = os.path.join(cert_dir, "client", "users", user)
    _owner, ids = service_owner(None)
    fsio.ensure_dir(target, 0o700, ids)
    return target


def _issue(cert_dir: str, user: str, target: str) -> Dict[str, Any]:
    """A client key + certificate for ``user`` from the local CA into ``target`` (see _prepare)."""
    from dbtls_agent.certs.ca import sign_requests
    from dbtls_agent.certs.layout import CertLayout, service_owner
    from dbtls_agent.crypto import DEFAULT_DAYS, get_backend

    layout = CertLayout(cert_dir)
    backend = get_backend()
    key_path, cert_path = os.path.join(target, "client.key"), os.path.join(target, "client.crt")
    key = fsio.read_bytes(key_path) or backend.generate_key("rsa2048")
    csr = backend.make_csr(key, user, [], "client")
    signed = sign_requests(layout, backend, csr, "client", dict(DEFAULT_DAYS))
    _owner, ids = service_owner(None)
    fsio.atomic_write(key_path, key, 0o600, ids)
    fsio.atomic_write(cert_path, signed["certificates"][0]["certificate"].encode(), 0o644, ids)
    fsio.atomic_write(os.path.join(target, "root.crt"), signed["ca"]["certificate"].encode(), 0o644, ids)
    return {"issued": True, "cert_path": cert_path, "key_path": key_path, "serial": signed["certificates"][0]["serial"]}


def cmd_user_cert(args: argparse.Namespace) -> int:
    from dbtls_agent.cli import print_json
    from dbtls_agent.roles.mysql.role import Node

    check_user_name(args.user)
    cert_dir = Context.of(args).cert_dir
    with NodeLock(cert_dir):
        node = Node(args)
        records = state.RoleState(cert_dir, STATE_ROLE)
        accounts = users.parse_accounts(node.client.query(users.accounts_query(args.user)))
        if not accounts:
            raise AgentError("no MySQL account named {!r}; create it first or check the user name".format(args.user))
        result = {"user": args.user, "hosts": [a.host for a in accounts]}  # type: Dict[str, Any]
        if args.remove:
            previous = [users.AccountTls.from_dict(r) for r in records.get(args.user, [])]
            statements = (users.restore_statements(previous) if previous
                          else users.require_none_statements(accounts))
            node.client.execute(statements)
            records.pop(args.user)
            if not records.data:
                records.remove()
            result["requirement"] = "restored" if previous else "none"
        else:
            target = None if args.no_issue else _prepare(cert_dir, args.user)
            records.remember(args.user, [a.to_dict() for a in accounts])
            subject = users.cn_subject(args.user) if args.subject else None
            node.client.execute(users.require_cert_statements(accounts, subject=subject))
            result["requirement"] = "SUBJECT " + subject if subject else "X509"
            if isinstance(target, dict):
                result["certificate"] = target
            elif target is not None:
                result["certificate"] = _issue(cert_dir, args.user, target)
        print_json(result)
    return 0


def register(subparsers: Any) -> None:
    parser = subparsers.add_parser("user-cert", help="MySQL family: require a client certificate for a user")
    parser.add_argument("--user", required=True, help="database user (every host entry of it)")
    parser.add_argument("--subject", action="store_true", help="REQUIRE SUBJECT '/CN=USER' instead of X509")
    parser.add_argument("--remove", action="store_true", help="put back the requirement recorded before")
    parser.add_argument("--no-issue", action="store_true", help="do not issue a client certificate here")
    parser.add_argument("--cert-dir", default=DEFAULT_CERT_DIR)
    parser.set_defaults(func=cmd_user_cert)
