"""The ``dbtls`` command: thin typer front end over plain modules (argument parsing and printing only)."""

from __future__ import annotations

import typer

from dbtls import build_cli
from dbtls.sim import addon_cli
from dbtls.sim.cli import sim_app

app = typer.Typer(help="dbtls: SSL/TLS in transit for database clusters on the Virtuozzo Application "
                       "Platform -- manifest generator and simulated platform.",
                  no_args_is_help=True, add_completion=False)
addon_cli.register(sim_app)
app.add_typer(sim_app, name="sim")
app.command()(build_cli.build)
app.command()(build_cli.validate)


if __name__ == "__main__":
    app()
