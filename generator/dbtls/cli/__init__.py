"""The ``dbtls`` command: thin typer front end over plain modules (argument parsing and printing only)."""

from __future__ import annotations

import typer

from dbtls.cli import build, sim_addon
from dbtls.cli.sim import sim_app

app = typer.Typer(help="dbtls: SSL/TLS in transit for database clusters on the Virtuozzo Application "
                       "Platform -- manifest generator and simulated platform.",
                  no_args_is_help=True, add_completion=False)
sim_addon.register(sim_app)
app.add_typer(sim_app, name="sim")
app.command()(build.build)
app.command()(build.validate)

