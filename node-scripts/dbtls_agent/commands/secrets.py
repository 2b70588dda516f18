"""``secrets recipient|seal|inspect|forget``: move database passwords between nodes sealed.

The protocol and what a node knows are in :mod:`dbtls_agent.passwords.exchange`; this module parses,
locks and prints.
"""

import argparse
import json
import socket
import sys
from typing import Any

from dbtls_agent import fsio, state
from dbtls_agent.cli import DEFAULT_CERT_DIR, print_json
from dbtls_agent.errors import AgentError
from dbtls_agent.passwords import exchange, sealbox


def _split_stdin(text: str) -> Any:
    """Public key PEM and the optional JSON object of extra passwords that may follow it."""
    end = "-----END PUBLIC KEY-----"
    if end not in text:
        raise AgentError("secrets seal: stdin must start with the PEM public key printed by 'secrets recipient'")
    pem, rest = text.split(end, 1)
    extra = {}  # type: Dict[str, str]
    if rest.strip():
        try:
            extra = json.loads(rest)
        except ValueError:
            raise AgentError("secrets seal: what follows the public key is not a JSON object of passwords") from None
        if not isinstance(extra, dict) or not all(isinstance(k, str) and isinstance(v, str) for k, v in extra.items()):
            raise AgentError("secrets seal: expected a JSON object of user -> password strings after the key")
    return (pem.strip() + "\n" + end + "\n").encode("ascii", "replace"), extra


def cmd_recipient(args: argparse.Namespace) -> int:
    with state.NodeLock(args.cert_dir):
        public = exchange.make_recipient(args.cert_dir, sealbox.get_sealer(), fresh=args.fresh)
    sys.stdout.write(public.decode("ascii"))
    return 0


def cmd_seal(args: argparse.Namespace) -> int:
    if args.from_manifest:
        from dbtls_agent import payload

        text = payload.decode_text(sys.stdin.read(), "recipient key from the manifest")
    elif args.to == "-":
        text = sys.stdin.read()
    else:
        text = fsio.read_text(args.to)
        if text is None:
            raise AgentError("secrets seal: cannot read {}".format(args.to))
    public, passwords = _split_stdin(text)
    if not args.no_gather:
        for user, password in exchange.known_passwords().items():
            passwords.setdefault(user, password)
    blob = sealbox.seal(sealbox.get_sealer(), public, json.dumps(passwords, sort_keys=True).encode("utf-8"))
    sys.stdout.write(blob + "\n")
    sys.stderr.write("dbtls-agent: sealed {} password(s) on {}\n".format(len(passwords), socket.gethostname()))
    return 0


def cmd_inspect(args: argparse.Namespace) -> int:
    """User names (never passwords) in the blobs on stdin; the key is kept."""
    with state.NodeLock(args.cert_dir):
        users = sorted(exchange.open_all(args.cert_dir, sys.stdin.read()))
    print_json({"users": users})
    return 0


def cmd_forget(args: argparse.Namespace) -> int:
    with state.NodeLock(args.cert_dir):
        print_json({"deleted": exchange.forget(args.cert_dir)})
    return 0


def register(subparsers: Any) -> None:
    """Add ``secrets`` and its subcommands to the agent's parser."""
    parser = subparsers.add_parser("secrets", help="seal database passwords for another node (recipient, seal)")
    sub = parser.add_subparsers(dest="secrets_command")

    def add(name: str, help_text: str, func: Any) -> argparse.ArgumentParser:
        p = sub.add_parser(name, help=help_text)
        p.add_argument("--cert-dir", default=DEFAULT_CERT_DIR, help="certificate directory (default %(default)s)")
        p.set_defaults(func=func)
        return p

    recipient = add("recipient", "make this node's one-run key pair; print the PUBLIC key PEM", cmd_recipient)
    recipient.add_argument("--fresh", action="store_true",
                           help="always a new key (default: reuse one made in the last 10 minutes)")
    sealp = add("seal", "stdin: recipient public key [+ JSON passwords]; print one sealed blob line", cmd_seal)
    sealp.add_argument("--to", default="-", metavar="FILE", help="read the public key from FILE (default stdin)")
    sealp.add_argument("--no-gather", action="store_true", help="seal only the JSON given, not this node's passwords")
    sealp.add_argument("--from-manifest", action="store_true",
                       help="stdin: base64 of the recipient's 'secrets recipient' output, as the manifest carries it")
    add("inspect", "JSON: user names inside the sealed blobs on stdin (never the passwords)", cmd_inspect)
    add("forget", "delete this node's recipient key", cmd_forget)
