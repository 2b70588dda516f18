"""``options save|show``: the install form's choices kept on this node (:mod:`dbtls_agent.options`)."""

import argparse
import sys
from typing import Any

from dbtls_agent import options, payload, state, vocab
from dbtls_agent.cli import DEFAULT_CERT_DIR, print_json


def cmd_save(args: argparse.Namespace) -> int:
    raw = {}  # type: Dict[str, str]
    if args.from_manifest:
        raw = payload.decode_fields(sys.stdin.read(), ("key_type", "min_tls", "extra_names") + options.TOGGLES)
        # A field the form did not send (an install through the API) arrives empty: keep its default.
        raw = {k: v for k, v in raw.items() if v != "" or k == "extra_names"}
    for key in ("key_type", "min_tls", "extra_names") + options.TOGGLES:
        value = getattr(args, key)
        if value is not None:
            raw[key] = value
    values = options.validate(raw)
    with state.NodeLock(args.cert_dir):
        options.save(args.cert_dir, values)
    print_json({"options": values, "path": options.path(args.cert_dir)})
    return 0


def cmd_show(args: argparse.Namespace) -> int:
    print_json(options.load(args.cert_dir))
    return 0


def register(subparsers: Any) -> None:
    """``options save|show``."""
    parser = subparsers.add_parser("options", help="the install form's choices kept on this node")
    sub = parser.add_subparsers(dest="options_command")
    save_p = sub.add_parser("save", help="validate and keep the install options on this node")
    show_p = sub.add_parser("show", help="JSON: the options kept on this node (defaults when none)")
    for p in (save_p, show_p):
        p.add_argument("--cert-dir", default=DEFAULT_CERT_DIR, help="certificate directory (default %(default)s)")
    save_p.add_argument("--key-type", dest="key_type", choices=vocab.KEY_TYPES)
    save_p.add_argument("--min-tls", dest="min_tls", choices=vocab.MIN_TLS_VERSIONS)
    save_p.add_argument("--extra-names", dest="extra_names", help="names separated by commas, semicolons or spaces")
    save_p.add_argument("--from-manifest", action="store_true",
                        help="stdin: '<name>=<base64>' tokens (key_type, min_tls, extra_names, the toggles)")
    for toggle in options.TOGGLES:
        save_p.add_argument("--" + toggle.replace("_", "-"), dest=toggle, metavar="true|false")
    save_p.set_defaults(func=cmd_save)
    show_p.set_defaults(func=cmd_show)
    parser.set_defaults(func=lambda a: (parser.print_help(), 2)[1])
