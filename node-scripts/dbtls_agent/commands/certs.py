"""Certificate subcommands: ``ca init``, ``ca sign``, ``csr``, ``install-certs``, ``inspect``.

Only argument parsing and printing happen here; the work is in certs/ca.py, certs/node.py and
certs/inspect.py. A full issue, as the manifest runs it::

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
from typing import Any, Callable, Dict

from dbtls_agent import state
from dbtls_agent.certs.layout import CertLayout
from dbtls_agent.cli import DEFAULT_CERT_DIR, print_json
from dbtls_agent.commands import argtypes
from dbtls_agent.crypto import DEFAULT_DAYS, DEFAULT_KEY_TYPE, KEY_TYPES, KINDS, get_backend
from dbtls_agent.errors import AgentError

_positive_days = argtypes.bounded_int("number of days", "days", 1, 36500)



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
    from dbtls_agent.certs import ca as certs_ca
    from dbtls_agent.certs import nodeinfo

    backend = get_backend(args.backend)
    key_type = args.key_type
    if args.options:
        from dbtls_agent import options

        key_type = key_type or options.load(args.cert_dir)["key_type"]
    key_type = key_type or DEFAULT_KEY_TYPE
    cn = args.cn
    if not cn:
        env, fallback = args.env_name, "dbtls"
        if not env:
            facts = nodeinfo.collect()
            env, fallback = facts["env_name"], str(facts["hostname"])
        cn = certs_ca.default_ca_cn(env, args.layer, fallback)
    layout = CertLayout(args.cert_dir)
    rotate = args.rotate or (args.env_name is not None and _foreign_ca(layout, backend, args.env_name))
    result = certs_ca.init_ca(layout, backend, cn, key_type, args.days, rotate)
    sys.stdout.write(str(result["certificate"], "ascii"))
    return 0


def _foreign_ca(layout: CertLayout, backend: Any, env_name: str) -> bool:
    """A CA made for another environment: this one is a clone, and must not share its CA."""
    from dbtls_agent.certs import ca as certs_ca

    ca = certs_ca.load_ca(layout, backend)
    if ca is None:
        return False
    subject = str(backend.parse_cert(ca["cert"]).get("subject", ""))
    return ("CN=" + env_name + " ") not in subject + " "


def cmd_ca_sign(args: argparse.Namespace) -> int:
    from dbtls_agent.certs import ca as certs_ca

    days = dict(DEFAULT_DAYS)
    if args.days:
        days["server"] = days["client"] = args.days
    if args.from_manifest:
        return _sign_from_manifest(args, days)
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


def _sign_from_manifest(args: argparse.Namespace, days: Dict[str, int]) -> int:
    """stdin: line 1 the requests ``<id>:<base64> ...``, line 2 the node list ``<id>=<ip>,...``,
    each line base64 as the manifest stores it; stdout: one JSON line (certificates and roots)."""
    import json

    from dbtls_agent import payload
    from dbtls_agent.certs import ca as certs_ca
    from dbtls_agent.certs import capolicy, nodeinfo

    if not args.env_domain or not args.layer:
        raise AgentError("ca sign --from-manifest needs --env-domain and --layer")
    lines = [line for line in sys.stdin.read().splitlines() if line.strip()]
    if len(lines) != 2:
        raise AgentError("ca sign --from-manifest: expected two base64 lines on stdin (requests, node list)")
    requests = []
    for node_id, data in payload.decode_list(payload.decode_text(lines[0], "request list"), "request list"):
        try:
            kinds = json.loads(data.decode("utf-8")) if data.strip() else {}
        except (ValueError, UnicodeDecodeError):
            raise AgentError("node {} sent a request that is not the JSON 'csr --bundle' prints".format(node_id)) from None
        if not isinstance(kinds, dict) or not all(k in ("server", "client") and isinstance(v, str)
                                                  for k, v in kinds.items()):
            raise AgentError("node {} sent a request that is not the JSON 'csr --bundle' prints".format(node_id))
        requests.append((node_id, kinds))
    nodes = capolicy.parse_nodes(payload.decode_text(lines[1], "node list"))
    policy = capolicy.load(args.cert_dir)
    layer = capolicy.check_layer(args.layer)
    users = list(policy["client_users"])
    admin = capolicy.admin_user(nodeinfo.compute_type())
    if admin:
        users.append(admin)
    result = certs_ca.sign_for_nodes(CertLayout(args.cert_dir), get_backend(args.backend), requests, nodes,
                                     args.env_domain, layer, policy["extra_names"].get(layer, []), users, days,
                                     args.with_previous)
    sys.stdout.write(json.dumps(result, sort_keys=True, separators=(",", ":")) + "\n")
    for item in result["certificates"]:
        if item["dropped"]:
            sys.stderr.write("dbtls-agent: node {}: left out {} (not listed by the platform for that node)\n"
                             .format(item["node"], ", ".join(item["dropped"])))
    return 0


def cmd_ca_policy(args: argparse.Namespace) -> int:
    from dbtls_agent import options
    from dbtls_agent.certs import capolicy

    extra = None
    if args.from_manifest:
        from dbtls_agent import payload

        raw = payload.decode_fields(sys.stdin.read(), ("extra_names",))
        extra = options.parse_names(raw.get("extra_names", ""))
    elif args.extra_names is not None:
        extra = options.parse_names(args.extra_names)
    if args.layer is None and extra is not None:
        raise AgentError("extra names need --layer")
    data = capolicy.register(args.cert_dir, args.layer, extra if args.layer else None, args.client_user)
    print_json(data)
    return 0


def cmd_ca_roots(args: argparse.Namespace) -> int:
    from dbtls_agent.certs import ca as certs_ca

    for pem in certs_ca.trust_bundle(CertLayout(args.cert_dir), get_backend(args.backend), args.with_previous):
        sys.stdout.write(str(pem, "ascii"))
    return 0


def cmd_csr(args: argparse.Namespace) -> int:
    from dbtls_agent.certs import node

    if args.bundle:
        return _csr_bundle(args)
    if not args.kind:
        raise AgentError("csr needs --kind server|client (or --bundle)")
    result = node.make_request(
        CertLayout(args.cert_dir), get_backend(args.backend), args.kind, args.user, args.san, args.key_type, args.rotate
    )
    if args.json:
        print_json(
            {k: (str(v, "ascii") if isinstance(v, bytes) else v) for k, v in result.items()}
        )
    else:
        sys.stdout.write(str(result["csr"], "ascii"))
    return 0


def _csr_bundle(args: argparse.Namespace) -> int:
    """One JSON line {kind: CSR PEM} for the manifest; ``{}`` when this node has nothing to ask."""
    import json

    from dbtls_agent.certs import capolicy, node, nodeinfo

    layout = CertLayout(args.cert_dir)
    has_cert = os.path.isfile(layout.cert_path("server"))
    key_type, extra = args.key_type, list(args.san)
    if args.options:
        from dbtls_agent import options

        saved = options.load(args.cert_dir)
        key_type = key_type or saved["key_type"]
        extra = extra or list(saved["extra_names"])
    if (args.if_installed and not has_cert) or (args.only_missing and has_cert):
        result = {}  # type: Dict[str, str]
    else:
        user = args.user or capolicy.admin_user(nodeinfo.compute_type())
        result = node.make_bundle(layout, get_backend(args.backend), args.scope, user, extra, key_type,
                                        args.rotate)
    sys.stdout.write(json.dumps(result, sort_keys=True, separators=(",", ":")) + "\n")
    return 0


def cmd_install(args: argparse.Namespace) -> int:
    from dbtls_agent.certs import node

    layout, backend = CertLayout(args.cert_dir), get_backend(args.backend)
    data = _read_stdin()
    if args.from_manifest:
        from dbtls_agent import payload

        data = payload.decode(data.decode("ascii", "replace"), "certificates from the CA node")
        if not args.roots_only:
            import json

            try:
                bundle = json.loads(data.decode("utf-8"))
            except (ValueError, UnicodeDecodeError):
                raise AgentError("the CA node's answer is not the JSON 'ca sign --from-manifest' prints") from None
            if not isinstance(bundle, dict):
                raise AgentError("the CA node's answer is not a JSON object")
            data = node.bundle_to_pem(bundle)
    if args.roots_only:
        if args.pick_own:
            raise AgentError("--roots-only and --pick-own exclude each other")
        print_json(node.install_roots(layout, backend, data, args.owner))
        return 0
    if args.allow_none and not node.has_own_certificate(layout, backend, data):
        print_json({"installed": [], "skipped": "no certificate here was issued for this node"})
        return 0
    print_json(node.install(layout, backend, data, args.owner, args.pick_own or args.from_manifest))
    return 0


def cmd_inspect(args: argparse.Namespace) -> int:
    from dbtls_agent.certs import inspect as certs_inspect

    print_json(certs_inspect.inspect(CertLayout(args.cert_dir), get_backend(args.backend)))
    return 0


def register(subparsers: Any) -> None:
    """Add the certificate subcommands to the agent's parser."""
    ca = subparsers.add_parser("ca", help="environment CA (CA node only)")
    ca_sub = ca.add_subparsers(dest="ca_command")
    init = ca_sub.add_parser("init", help="create the CA if absent; print root.crt")
    _common(init)
    init.add_argument("--key-type", choices=KEY_TYPES, help="one of " + ", ".join(KEY_TYPES) + " (default: the saved "
                      "options with --options, else " + DEFAULT_KEY_TYPE + ")")
    init.add_argument("--options", action="store_true", help="take the key type from the saved install options")
    init.add_argument("--days", type=_positive_days, default=DEFAULT_DAYS["ca"])
    init.add_argument("--cn", help="CA common name (default '<env> [<layer>] CA')")
    init.add_argument("--env-name", help="environment name for the default CN; an existing CA made for another "
                      "environment (a clone) is replaced")
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
    sign.add_argument("--from-manifest", action="store_true",
                      help="stdin: base64 request list and node list as the manifest collects them; the CA's "
                           "policy decides what is signed; stdout: one JSON line")
    sign.add_argument("--env-domain", help="with --from-manifest: the environment's domain (platform data)")
    sign.add_argument("--layer", help="with --from-manifest: the layer (node group) of the requesting nodes")
    sign.set_defaults(func=_locked(cmd_ca_sign))

    policy = ca_sub.add_parser("policy", help="record what the CA may sign: a layer's extra names, client users")
    _common(policy)
    policy.add_argument("--layer", help="layer whose extra names are recorded")
    policy.add_argument("--extra-names", help="extra names of the layer (commas, semicolons or spaces)")
    policy.add_argument("--from-manifest", action="store_true", help="stdin: 'extra_names=<base64>'")
    policy.add_argument("--client-user", action="append", default=[], help="database user that may get a client "
                        "certificate (repeatable)")
    policy.set_defaults(func=_locked(cmd_ca_policy))

    roots = ca_sub.add_parser("roots", help="print the root(s) nodes should trust (PEM)")
    _common(roots)
    roots.add_argument("--with-previous", action="store_true",
                       help="also the root the last 'ca init --rotate' retired, while it is in date")
    roots.set_defaults(func=cmd_ca_roots)
    ca.set_defaults(func=lambda args: _usage(ca))

    csr = subparsers.add_parser("csr", help="make this node's key (if needed) and print a CSR")
    _common(csr)
    csr.add_argument("--kind", choices=KINDS, help="server or client (required without --bundle)")
    csr.add_argument("--user", help="database user for a client certificate (default webadmin)")
    csr.add_argument("--san", action="append", default=[], help="extra DNS name or IP (repeatable)")
    csr.add_argument("--key-type", choices=KEY_TYPES,
                     help="one of " + ", ".join(KEY_TYPES) + " (default: keep the key, else rsa2048)")
    csr.add_argument("--rotate", action="store_true", help="new key, staged until its certificate is installed")
    csr.add_argument("--json", action="store_true", help="print JSON {csr, cn, sans, key_path, new_key}")
    csr.add_argument("--bundle", action="store_true",
                     help="one JSON line {server: CSR, client: CSR} for the manifest (--scope picks the kinds)")
    csr.add_argument("--scope", choices=("server", "client", "all"), default="all", help="with --bundle")
    csr.add_argument("--options", action="store_true", help="key type and extra names from the saved options")
    csr.add_argument("--if-installed", action="store_true", help="with --bundle: print {} unless certificates exist")
    csr.add_argument("--only-missing", action="store_true", help="with --bundle: print {} when certificates exist")
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
    install.add_argument("--from-manifest", action="store_true",
                         help="stdin: base64 of the CA node's 'ca sign --from-manifest' answer (or, with "
                              "--roots-only, of the roots PEM); implies --pick-own")
    install.add_argument("--allow-none", action="store_true",
                         help="nothing to install here (no certificate for this node's keys) is not an error")
    install.set_defaults(func=_locked(cmd_install))

    inspect = subparsers.add_parser("inspect", help="JSON description of every certificate here")
    _common(inspect)
    inspect.set_defaults(func=cmd_inspect)


def _usage(parser: argparse.ArgumentParser) -> int:
    parser.print_help(sys.stderr)
    return 2
