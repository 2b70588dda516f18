"""Argument parsing and dispatch for ``dbtls-agent``.

Each command lives in its own module that exposes ``register(subparsers)``; this module only wires
them together and turns ``AgentError`` into a one-line message and a non-zero exit.
"""

import argparse
import json
import sys
from typing import Any, List, Optional

from dbtls_agent import __version__
from dbtls_agent.errors import AgentError
from dbtls_agent.state import DEFAULT_CERT_DIR  # noqa: F401  (the commands read it from here)

# Modules that contribute subcommands. Each must define register(subparsers).
COMMAND_MODULES = ["dbtls_agent.commands.certs", "dbtls_agent.commands.roles", "dbtls_agent.commands.pool",
                   "dbtls_agent.commands.usercert", "dbtls_agent.commands.secrets", "dbtls_agent.commands.proxysql",
                   "dbtls_agent.commands.forecast", "dbtls_agent.commands.options", "dbtls_agent.commands.statusline",
                   "dbtls_agent.commands.preflight", "dbtls_agent.commands.users",
                   "dbtls_agent.commands.replication", "dbtls_agent.commands.kit",
                   "dbtls_agent.commands.due", "dbtls_agent.commands.renew"]  # type: List[str]


def build_parser() -> argparse.ArgumentParser:
    """Build the top-level parser with every registered subcommand."""
    parser = argparse.ArgumentParser(prog="dbtls-agent", description="dbtls node agent")
    parser.add_argument("--version", action="version", version=__version__)
    subparsers = parser.add_subparsers(dest="command")
    import importlib

    for name in COMMAND_MODULES:
        importlib.import_module(name).register(subparsers)
    return parser


def print_json(data: Any) -> None:
    """Print one JSON document; every command's machine-readable output goes through here."""
    sys.stdout.write(json.dumps(data, indent=2, sort_keys=True) + "\n")


def main(argv: Optional[List[str]] = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    if not getattr(args, "func", None):
        parser.print_help(sys.stderr)
        return 2
    try:
        result = args.func(args)
    except AgentError as exc:
        sys.stderr.write("dbtls-agent: error: {}\n".format(exc))
        return exc.exit_code
    except KeyboardInterrupt:
        sys.stderr.write("dbtls-agent: error: interrupted\n")
        return 130
    return int(result or 0)
