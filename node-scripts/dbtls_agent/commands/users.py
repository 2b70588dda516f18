"""``role set-password --user U``: give an existing role a SCRAM secret for a password, on the primary.

The first half of letting a user through Pgpool-II with SCRAM (``pool-passwd allow`` on each
Pgpool-II node is the second). The password comes sealed on stdin or from a root-only file (see
:mod:`dbtls_agent.passwords.secretinput`), never from argv; the SCRAM verifier is computed here, so the
cleartext never reaches SQL, the server log or pg_stat_activity (``ALTER ROLE ... PASSWORD
'SCRAM-SHA-256$...'`` stores a verifier as it is). Afterwards the stored secret is checked against
the password. The change is committed so that the standbys apply it before the primary's logins see
it, and the command waits until every standby has replayed it: Pgpool-II opens a session on each
backend and needs them to ask for the same authentication method.

The role's per-role md5 rule in pg_hba.conf, if it had one, stays until the next enable run; the md5
method accepts the new SCRAM secret (PostgreSQL then runs SCRAM), so nothing breaks meanwhile. The new
secret is the user's: uninstall keeps it.
"""

import argparse
import sys
from typing import Any, Dict

from dbtls_agent import state
from dbtls_agent.cli import DEFAULT_CERT_DIR, print_json
from dbtls_agent.errors import AgentError
from dbtls_agent.passwords import secretinput
from dbtls_agent.roles import base
from dbtls_agent.roles.postgres import apply, client, preflight, secretsync, server


def set_password(ctx: base.Context, user: str, password: str) -> Dict[str, Any]:
    _check_primary()
    rows = client.psql("SELECT rolcanlogin::text, rolreplication::text, coalesce(rolpassword, '') FROM pg_authid "
                         "WHERE rolname = {}".format(client.literal(user)), os_user=server.SERVICE_USER)
    if not rows:
        raise AgentError("role {} does not exist; create it first (CREATE ROLE {} LOGIN)".format(
            user, client.ident(user)))
    can_login, replication, secret = rows[0]
    if can_login != "true":
        raise AgentError("role {} cannot log in (NOLOGIN); ALTER ROLE {} LOGIN first".format(user, client.ident(user)))
    if replication == "true":
        raise AgentError("role {} has the REPLICATION attribute: standbys log in with its stored password, which "
                         "this command must not change".format(user))
    before = preflight.secret_kind(secret)
    changed = not (before == "scram" and client.secret_matches(user, secret, password))
    if changed:
        verifier = client.scram_verifier(password)
        info = server.facts()
        if info is None:
            raise AgentError("no PostgreSQL server on this node")
        # Committed so that the standbys apply it before the primary's logins see it (roles/postgres/secretsync).
        secretsync.apply(["ALTER ROLE {} PASSWORD {}".format(client.ident(user), client.literal(verifier))],
                         info["auto_conf"], state.state_dir(ctx.cert_dir), os_user=server.SERVICE_USER)
    stored = client.role_secrets().get(user)
    if not client.secret_matches(user, stored, password):
        raise AgentError("the stored secret of {} does not match the given password after ALTER ROLE".format(user))
    if changed:
        apply.wait_standbys_replayed(ctx)
    if before == "md5":
        ctx.say("{}'s md5 rule in pg_hba.conf (if any) stays until the next enable run; it accepts the SCRAM "
                "secret".format(user))
    return {"user": user, "changed": changed, "before": before, "secret": "scram", "messages": ctx.messages}


def _check_primary() -> None:
    info = server.facts(require_running=True) or {}
    if info.get("in_recovery"):
        raise AgentError("this node is a standby; run 'role set-password' on the primary")


def cmd_set_password(args: argparse.Namespace) -> int:
    user = secretinput.check_role_name(args.user)
    _check_primary()  # before the password is read: a password file is deleted once read
    password = secretinput.password_for(args, user)
    ctx = base.Context(args, "role")
    with state.NodeLock(ctx.cert_dir):
        print_json(set_password(ctx, user, password))
    return 0


def register(subparsers: Any) -> None:
    """Add ``role set-password`` to the agent's parser."""
    role = subparsers.add_parser("role", help="database roles on a PostgreSQL primary")
    sub = role.add_subparsers(dest="role_command")
    setp = sub.add_parser("set-password", help="store a SCRAM secret for an existing role (password sealed on "
                                               "stdin or in a root-only file)")
    setp.add_argument("--user", required=True, help="the role (letters, digits, _ . -)")
    secretinput.add_arguments(setp)
    setp.add_argument("--cert-dir", default=DEFAULT_CERT_DIR, help="certificate directory (state and seal key)")
    setp.set_defaults(func=cmd_set_password)
    role.set_defaults(func=lambda a: (role.print_help(sys.stderr), 2)[1])
