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

# Modules that contribute subcommands, each with the subcommands its register(subparsers) adds, in the
# order ``--help`` lists them. A run of one subcommand imports only the module that defines it: every
# agent call on a node pays its interpreter's start-up, and the modules of the other commands (the
# roles' configuration parsers, the crypto backends) are most of it.
COMMANDS = [
    ("dbtls_agent.commands.certs", ("ca", "csr", "install-certs", "inspect")),
    ("dbtls_agent.commands.roles", ("detect", "enable", "disable", "status")),
    ("dbtls_agent.commands.pool", ("pool-passwd",)),
    ("dbtls_agent.commands.usercert", ("user-cert",)),
    ("dbtls_agent.commands.secrets", ("secrets",)),
    ("dbtls_agent.commands.proxysql", ("proxysql-backend",)),
    ("dbtls_agent.commands.forecast", ("restart-expected",)),
    ("dbtls_agent.commands.options", ("options",)),
    ("dbtls_agent.commands.statusline", ("status-line",)),
    ("dbtls_agent.commands.preflight", ("preflight",)),
    ("dbtls_agent.commands.users", ("role",)),
    ("dbtls_agent.commands.replication", ("replication",)),
    ("dbtls_agent.commands.kit", ("kit",)),
    ("dbtls_agent.commands.due", ("certs",)),
    ("dbtls_agent.commands.renew", ("renew",)),
]  # type: List[Tuple[str, Tuple[str, ...]]]
COMMAND_MODULES = [name for name, _ in COMMANDS]  # type: List[str]


def _modules_for(argv: Optional[List[str]]) -> List[str]:
    """The command modules a parse of ``argv`` needs: the one defining its subcommand, else all.

    The subcommand is the first argument that is not an option (the top-level parser has only
    ``--version`` and ``--help``, which take no value). Without one, or with a name no module
    defines, every module is registered so that help and the "invalid choice" error list them all.
    """
    if argv is None:
        return COMMAND_MODULES
    first = next((arg for arg in argv if not arg.startswith("-")), None)
    for name, commands in COMMANDS:
        if first in commands:
            return [name]
    return COMMAND_MODULES


def build_parser(argv: Optional[List[str]] = None) -> argparse.ArgumentParser:
    """Build the top-level parser: every registered subcommand, or only the one ``argv`` runs."""
    parser = argparse.ArgumentParser(prog="dbtls-agent", description="dbtls node agent")
    parser.add_argument("--version", action="version", version=__version__)
    subparsers = parser.add_subparsers(dest="command")
    import importlib

    for name in _modules_for(argv):
        importlib.import_module(name).register(subparsers)
    return parser


def print_json(data: Any) -> None:
    """Print one JSON document; every command's machine-readable output goes through here."""
    sys.stdout.write(json.dumps(data, indent=2, sort_keys=True) + "\n")


def main(argv: Optional[List[str]] = None) -> int:
    if argv is None:
        argv = sys.argv[1:]
    parser = build_parser(argv)
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
