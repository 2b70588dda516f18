"""``dbtls sim``: the docker-simulated platform (up, status, exec, down)."""

from __future__ import annotations

import json
import shutil
from typing import Annotated

import typer
from rich.console import Console
from rich.table import Table

from dbtls.sim import cluster, images
from dbtls.sim.errors import NoEnvironment, SimError

sim_app = typer.Typer(help="Simulated platform nodes in docker containers.", no_args_is_help=True)
err = Console(stderr=True)
# Wide enough for hostnames when the output is not a terminal (logs, CI).
out = Console(width=max(160, shutil.get_terminal_size().columns))


def _fail(exc: Exception) -> typer.Exit:
    err.print(f"[red]dbtls sim: error:[/red] {exc}", highlight=False, soft_wrap=True)
    return typer.Exit(1)


def _table(rows: list[cluster.NodeStatus]) -> Table:
    table = Table("env", "node", "role", "group", "hostname", "ip", "container", "service")
    for r in rows:
        table.add_row(r.env, f"{r.node_id}{' (master)' if r.is_master and r.role != 'client' else ''}",
                      r.role, r.group, r.hostname, r.ip, r.container_id,
                      "[green]up[/green]" if r.service_up else "[red]down[/red]")
    return table


@sim_app.command()
def up(
    topology: Annotated[str, typer.Argument(help="pg | pg-cluster | mariadb | mariadb-cluster")],
    release: Annotated[str, typer.Option(help="Debian release of the node images")] = images.DEFAULT_RELEASE,
    env: Annotated[str | None, typer.Option(help="environment name (default: the topology)")] = None,
    standbys: Annotated[int, typer.Option(help="standbys/replicas in a cluster topology")] = 1,
) -> None:
    """Build images if needed, start the topology, wait until every service answers."""
    try:
        rows = cluster.up(topology, env=env, release=release, standbys=standbys,
                          progress=lambda m: err.print(f"[dim]{m}[/dim]", highlight=False))
    except (SimError, ValueError) as exc:
        raise _fail(exc) from None
    out.print(_table(rows))


@sim_app.command()
def status(
    env: Annotated[str | None, typer.Option(help="only this environment")] = None,
    as_json: Annotated[bool, typer.Option("--json", help="machine-readable output")] = False,
) -> None:
    """Every simulated node: name, role, group, hostname, IP, container id, service state."""
    try:
        rows = cluster.status(cluster.client(), env)
        if env and not rows:
            raise NoEnvironment(env)
    except NoEnvironment as exc:
        typer.echo(f"dbtls: {exc}", err=True)
        raise typer.Exit(1) from None
    except SimError as exc:
        raise _fail(exc) from None
    if as_json:
        typer.echo(json.dumps([r.as_dict() for r in rows], indent=2))
    else:
        out.print(_table(rows))


@sim_app.command(name="exec", context_settings={"allow_extra_args": True, "ignore_unknown_options": True})
def exec_(
    ctx: typer.Context,
    node: Annotated[str, typer.Argument(help="container name, node id, node<ID>, hostname or role")],
    env: Annotated[str | None, typer.Option(help="environment of the node")] = None,
    user: Annotated[str | None, typer.Option(help="run as this OS user")] = None,
) -> None:
    """Run a command in a node: ``dbtls sim exec NODE -- CMD ...``."""
    command = list(ctx.args)
    if not command:
        raise _fail(SimError("give a command after --"))
    try:
        container = cluster.resolve(cluster.client(), node, env)
    except SimError as exc:
        raise _fail(exc) from None
    raise typer.Exit(cluster.exec_interactive(container, command, user))


@sim_app.command()
def down(
    env: Annotated[str | None, typer.Option(help="environment to remove")] = None,
    all_: Annotated[bool, typer.Option("--all", help="remove every simulated environment")] = False,
    topology: Annotated[str | None, typer.Argument(help="shorthand for --env TOPOLOGY")] = None,
) -> None:
    """Remove containers, volumes and networks of an environment (or of all with --all)."""
    try:
        count = cluster.down(env or topology, everything=all_,
                             progress=lambda m: err.print(f"[dim]{m}[/dim]", highlight=False))
    except SimError as exc:
        raise _fail(exc) from None
    out.print(f"removed {count} container(s)")


@sim_app.command(name="images")
def images_(
    release: Annotated[list[str] | None, typer.Option(help="release(s) to build")] = None,
) -> None:
    """Build the base and node images (done by ``up`` on demand; useful to warm the cache)."""
    try:
        engine = cluster.client()
        for rel in release or [images.DEFAULT_RELEASE]:
            images.ensure_images(engine, rel, images.ROLE_IMAGES,
                                 progress=lambda m: err.print(f"[dim]{m}[/dim]", highlight=False))
    except SimError as exc:
        raise _fail(exc) from None
