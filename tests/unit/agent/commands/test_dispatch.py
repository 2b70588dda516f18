"""The agent's dispatch registers only the module of the subcommand it runs, and the table says which."""

import argparse
import os
import subprocess
import sys

import pytest

from dbtls_agent import cli

NODE_SCRIPTS = os.path.join(os.path.dirname(__file__), "..", "..", "..", "..", "node-scripts")


def _subcommands(parser: argparse.ArgumentParser) -> list:
    action = next(a for a in parser._actions if isinstance(a, argparse._SubParsersAction))
    return list(action.choices)


def test_the_table_names_what_each_module_registers():
    listed = [command for _, commands in cli.COMMANDS for command in commands]
    assert _subcommands(cli.build_parser()) == listed


@pytest.mark.parametrize("module,commands", cli.COMMANDS)
def test_a_subcommand_registers_its_module_alone(module, commands):
    for command in commands:
        assert _subcommands(cli.build_parser([command, "--help"])) == list(commands)


@pytest.mark.parametrize("argv", [[], ["--version"], ["no-such-command"], ["-h"]])
def test_without_a_known_subcommand_every_module_is_registered(argv):
    assert _subcommands(cli.build_parser(argv)) == _subcommands(cli.build_parser())


def test_a_request_does_not_import_the_roles():
    code = ("import sys; from dbtls_agent import cli; cli.build_parser(['csr', '--bundle']);"
            "print(sorted(m for m in sys.modules if m.startswith('dbtls_agent.roles')"
            " or m.startswith('dbtls_agent.commands.')))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True,
                         env=dict(os.environ, PYTHONPATH=NODE_SCRIPTS)).stdout
    assert eval(out) == ["dbtls_agent.commands.argtypes", "dbtls_agent.commands.certs"]
