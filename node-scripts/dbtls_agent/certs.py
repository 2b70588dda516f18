"""Certificate subcommands: ``ca init``, ``ca sign``, ``csr``, ``install-certs``, ``inspect``.

Only argument parsing and printing happen here; the work is in certs_ca, certs_node and
certs_inspect. A full issue, as the manifest runs it::

    CA node:   ca init                       -> root.crt PEM on stdout
    each node: csr --kind server [--san ..]  -> CSR PEM     (and csr --kind client --user webadmin)
    CA node:   ca sign < all CSRs            -> JSON {ca, certificates: [{index, cn, kind, certificate}]}
                                                (--format pem: every certificate, then root.crt)
    each node: install-certs < its certs + root.crt PEM

The manifest runs ``csr`` on every node of a layer at once, signs all their CSRs in one ``ca sign
--format pem``, and hands the whole bundle to every node: ``install-certs --pick-own`` installs only
the certificates whose public key matches one of the node's keys (pending or installed), lists the
others under ``skipped`` in its JSON, and fails (nothing written) when none matches.

Re-issue: ``csr --rotate`` (server and/or client) then sign and install again. A new CA, without
a moment where one node presents a certificate another does not trust yet::

    CA node:    ca init --rotate; ca roots --with-previous  -> new root + previous root
    every node: install-certs --roots-only < both roots     (root.crt trusts both)
    then re-issue both kinds on every node with ``ca sign --with-previous`` (root.crt keeps both);
    the next certificate run signs without it and root.crt holds the new root alone again.
"""

import argparse
import os
import sys
from typing import Any, Callable

from dbtls_agent import state
from dbtls_agent.certs_layout import CertLayout
from dbtls_agent.cli import DEFAULT_CERT_DIR, print_json
from dbtls_agent.crypto import DEFAULT_DAYS, DEFAULT_KEY_TYPE, KEY_TYPES, KINDS, get_backend
from dbtls_agent.errors import AgentError


def _positive_days(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError("not a number of days: {!r}".format(text)) from None
    if not 1 <= value <= 36500:
        raise argparse.ArgumentTypeError("days must be between 1 and 36500")
    return value


def _locked(command: Callable[[argparse.Namespace], int]) -> Callable[[argparse.Namespace], int]:
    """Run a command that writes keys or certificates under the node lock.

    Two re-issues at once on one node (the button pressed twice) would otherwise overwrite each
    other's pending key and interleave key and certificate writes; the second run now waits.
    Before the first issue the certificate folder does not exist yet and nothing can interleave
    with a re-issue; the lock (which lives inside the folder) is skipped then, so a refused first
    run still leaves nothing on disk.
    """
    def run(args: argparse.Namespace) -> int:
        if not os.path.isdir(os.path.join(args.cert_dir, state.STATE_DIR_NAME)) and not os.path.isdir(
                os.path.join(args.cert_dir, "server")):
            return command(args)
        with state.NodeLock(args.cert_dir):
            return command(args)
    return run


def _common(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--cert-dir", default=DEFAULT_CERT_DIR, help="certificate directory (default %(default)s)")
    parser.add_argument("--backend", choices=("cryptography", "openssl"), help="force a crypto backend")


def _read_stdin() -> bytes:
    data = sys.stdin.buffer.read()
    if not data.strip():
        raise AgentError("nothing on stdin")
    return data


def cmd_ca_init(args: argparse.Namespace) -> int:
    from dbtls_agent import certs_ca, nodeinfo

    backend = get_backend(args.backend)
    cn = args.cn
    if not cn:
        env, fallback = args.env_name, "dbtls"
        if not env:
            facts = nodeinfo.collect()
            env, fallback = facts["env_name"], str(facts["hostname"])
        cn = certs_ca.default_ca_cn(env, args.layer, fallback)
    result = certs_ca.init_ca(CertLayout(args.cert_dir), backend, cn, args.key_type, args.days, args.rotate)
    sys.stdout.write(str(result["certificate"], "ascii"))
    return 0


def cmd_ca_sign(args: argparse.Namespace) -> int:
    from dbtls_agent import certs_ca

    days = dict(DEFAULT_DAYS)
    if args.days:
        days["server"] = days["client"] = args.days
    result = certs_ca.sign_requests(CertLayout(args.cert_dir), get_backend(args.backend), _read_stdin(), args.kind, days,
                                    args.with_previous)
    if args.format == "pem":
        for item in result["certificates"]:
            sys.stdout.write(item["certificate"])
        sys.stdout.write(result["ca"]["certificate"])
        for pem in result["ca"]["also_trusted"]:
            sys.stdout.write(pem)
    else:
        print_json(result)
    return 0


def cmd_ca_roots(args: argparse.Namespace) -> int:
    from dbtls_agent import certs_ca

    for pem in certs_ca.trust_bundle(CertLayout(args.cert_dir), get_backend(args.backend), args.with_previous):
        sys.stdout.write(str(pem, "ascii"))
    return 0


def cmd_csr(args: argparse.Namespace) -> int:
    from dbtls_agent import certs_node

    result = certs_node.make_request(
        CertLayout(args.cert_dir), get_backend(args.backend), args.kind, args.user, args.san, args.key_type, args.rotate
    )
    if args.json:
        print_json(
            {k: (str(v, "ascii") if isinstance(v, bytes) else v) for k, v in result.items()}
        )
    else:
        sys.stdout.write(str(result["csr"], "ascii"))
    return 0


def cmd_install(args: argparse.Namespace) -> int:
    from dbtls_agent import certs_node

    layout, backend = CertLayout(args.cert_dir), get_backend(args.backend)
    if args.roots_only:
        if args.pick_own:
            raise AgentError("--roots-only and --pick-own exclude each other")
        print_json(certs_node.install_roots(layout, backend, _read_stdin(), args.owner))
        return 0
    print_json(certs_node.install(layout, backend, _read_stdin(), args.owner, args.pick_own))
    return 0


def cmd_inspect(args: argparse.Namespace) -> int:
    from dbtls_agent import certs_inspect

    print_json(certs_inspect.inspect(CertLayout(args.cert_dir), get_backend(args.backend)))
    return 0


def register(subparsers: Any) -> None:
    """Add the certificate subcommands to the agent's parser."""
    ca = subparsers.add_parser("ca", help="environment CA (CA node only)")
    ca_sub = ca.add_subparsers(dest="ca_command")
    init = ca_sub.add_parser("init", help="create the CA if absent; print root.crt")
    _common(init)
    init.add_argument("--key-type", default=DEFAULT_KEY_TYPE, help="one of " + ", ".join(KEY_TYPES))
    init.add_argument("--days", type=_positive_days, default=DEFAULT_DAYS["ca"])
    init.add_argument("--cn", help="CA common name (default '<env> [<layer>] CA')")
    init.add_argument("--env-name", help="environment name for the default CN")
    init.add_argument("--layer", help="layer (node group) name for the default CN")
    init.add_argument("--rotate", action="store_true", help="make a new CA; the old one is kept in ca/old-<serial>/")
    init.set_defaults(func=_locked(cmd_ca_init))

    sign = ca_sub.add_parser("sign", help="sign PEM CSRs read from stdin")
    _common(sign)
    sign.add_argument("--days", type=_positive_days, help="validity (default server 825, client 365)")
    sign.add_argument("--kind", choices=("auto",) + KINDS, default="auto")
    sign.add_argument("--format", choices=("json", "pem"), default="json")
    sign.add_argument("--with-previous", action="store_true",
                      help="CA rotation: hand out the previous root next to the new one (root.crt = both)")
    sign.set_defaults(func=_locked(cmd_ca_sign))

    roots = ca_sub.add_parser("roots", help="print the root(s) nodes should trust (PEM)")
    _common(roots)
    roots.add_argument("--with-previous", action="store_true",
                       help="also the root the last 'ca init --rotate' retired, while it is in date")
    roots.set_defaults(func=cmd_ca_roots)
    ca.set_defaults(func=lambda args: _usage(ca))

    csr = subparsers.add_parser("csr", help="make this node's key (if needed) and print a CSR")
    _common(csr)
    csr.add_argument("--kind", choices=KINDS, required=True)
    csr.add_argument("--user", help="database user for a client certificate (default webadmin)")
    csr.add_argument("--san", action="append", default=[], help="extra DNS name or IP (repeatable)")
    csr.add_argument("--key-type", help="one of " + ", ".join(KEY_TYPES) + " (default: keep the key, else rsa2048)")
    csr.add_argument("--rotate", action="store_true", help="new key, staged until its certificate is installed")
    csr.add_argument("--json", action="store_true", help="print JSON {csr, cn, sans, key_path, new_key}")
    csr.set_defaults(func=_locked(cmd_csr))

    install = subparsers.add_parser("install-certs", help="install certificates + root.crt read from stdin")
    _common(install)
    install.add_argument("--owner", help="owner of server/ and client/ (default: postgres or mysql if present)")
    install.add_argument(
        "--pick-own",
        action="store_true",
        help="stdin holds many nodes' certificates: install only those matching a key here (error if none)",
    )
    install.add_argument(
        "--roots-only",
        action="store_true",
        help="stdin holds CA certificates only: make them root.crt in server/ and client/ (CA rotation)",
    )
    install.set_defaults(func=_locked(cmd_install))

    inspect = subparsers.add_parser("inspect", help="JSON description of every certificate here")
    _common(inspect)
    inspect.set_defaults(func=cmd_inspect)


def _usage(parser: argparse.ArgumentParser) -> int:
    parser.print_help(sys.stderr)
    return 2
